"""The version, in a module of its own: the app and the CLI read it without importing the package root
(whose apply_spec reaches the torch side)."""

__version__ = "0.1.0"
