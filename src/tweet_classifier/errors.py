"""The one base class for errors a user can fix; the CLI prints these as one line, no traceback."""


class TweetClassifierError(Exception):
    """Bad input, config or artifact. The message says what is wrong and what to do."""
