"""Errors the command line turns into one clear line for the user."""


class StartupError(RuntimeError):
    """The bot could not start; the message says what to check."""
