"""Modal screens of the app (help, arms, confirm)."""
