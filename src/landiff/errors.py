"""The one exception type for user mistakes: the CLI prints its message as one line and exits 2."""


class UserError(Exception):
    """A mistake in the user's input (a path, an option, a file); the message says how to fix it."""
