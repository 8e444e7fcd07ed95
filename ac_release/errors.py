class ReleaseError(Exception):
    """A failure the release engineer can act on.

    The message is one line saying what is wrong and what to do; the CLI prints it without a traceback and
    exits non-zero. Never put a secret in it.
    """
