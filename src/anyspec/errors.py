"""The one exception users see: a message that says what went wrong and how to fix it."""


class AnyspecError(Exception):
    """Bad input or a missing dependency. The message is meant for the user, as is."""


class ContextOverflowError(AnyspecError):
    """The prompt (plus what must be generated) does not fit in the model's context."""
