"""The one exception type that user-facing code raises for bad input.

The command line turns a ``UserError`` into a one-line message and a non-zero exit; anything else is
a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input or a missing asset, explained in one actionable line."""
