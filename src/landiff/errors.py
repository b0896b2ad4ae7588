"""The exception types for user mistakes: the CLI prints their message as one line and exits 2."""


class UserError(Exception):
    """A mistake in the user's input (a path, an option, a file); the message says how to fix it."""


class TrainingDiverged(UserError):
    """Training stopped after too many consecutive non-finite steps (the message names the last good checkpoint)."""


class UnlabelledData(UserError):
    """Class labels were asked of data that has none (images loose in a folder's root, a dataset prepared
    without labels); ``reason`` says which, without the fix (that depends on what asked for labels)."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
