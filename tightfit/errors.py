"""The one error type that means "the user's input is wrong"; the CLI turns it into exit code 2."""


class TightfitError(Exception):
    """Bad input or an unmet precondition. The message names the input and the fix."""
