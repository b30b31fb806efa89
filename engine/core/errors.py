"""The one error type that may reach a user: a clear, single-line message (exit code 2)."""


class FreezeTuiError(Exception):
    """Bad input or an unrecoverable condition the user can fix; str() is the whole message."""


class SpecError(FreezeTuiError):
    """A freeze spec that cannot be parsed or applied."""


class LogError(FreezeTuiError):
    """A run log that cannot be read."""
