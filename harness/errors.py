"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class HarnessError(Exception):
    """A user-facing error: bad input, missing data, unknown names. The message says what and where."""
