"""The one exception family of :mod:`imdsmock.netsetup`."""


class NetsetupError(Exception):
    """Bad input, missing privilege or a failed command; the CLI prints it as one line.

    The message names what was wrong, the value, and what is allowed or how to fix it.
    """
