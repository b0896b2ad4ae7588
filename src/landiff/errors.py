"""The exception types for user mistakes: the CLI prints their message as one line and exits 2."""


class UserError(Exception):
    """A mistake in the user's input (a path, an option, a file); the message says how to fix it."""


class TrainingDiverged(UserError):
    """Training stopped after too many consecutive non-finite steps (the message names the last good checkpoint)."""
