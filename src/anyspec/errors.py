"""The one exception users see: a message that says what went wrong and how to fix it."""


class AnyspecError(Exception):
    """Bad input or a missing dependency. The message is meant for the user, as is."""


class ContextOverflowError(AnyspecError):
    """The prompt (plus what must be generated) does not fit in the model's context."""


class MissingExtraError(AnyspecError):
    """An optional dependency is not installed; the message names the extra that brings it."""


def require(*modules: str, extra: str, feature: str) -> None:
    """Import `modules` or raise MissingExtraError with the pip command that installs them.

    Backends and features are extras (pyproject.toml): `anyspec[llamacpp]`, `anyspec[hf]`,
    `anyspec[serve]`, `anyspec[bench]`, `anyspec[models]`. A module that is present but fails
    to import (a broken build) re-raises its own error: reinstalling the extra would not help.
    """
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as e:
            if e.name is None or e.name.split(".")[0] != module.split(".")[0]:
                raise
            raise MissingExtraError(
                f"{feature} needs {module}, which is not installed: "
                f"pip install 'anyspec[{extra}]'") from None
