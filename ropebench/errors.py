"""The one exception type users see: a one-line message naming the problem and the fix."""


class RopebenchError(Exception):
    """Bad input or an unusable environment. The CLI prints the message and exits with code 2."""
