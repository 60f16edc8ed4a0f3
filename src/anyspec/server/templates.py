"""Chat messages -> one prompt string, with the target's chat template or a plain one.

The one renderer of chat templates: the server's chat requests and the bench's conversations
(anyspec.bench.data) both go through render_chat, so this module imports nothing of the server
(only jinja2, when rendering).

A base model such as the embedded Gemma 3 270M has no chat template. For it the server uses
PLAIN_TEMPLATE:

    System: You are terse.

    User: What is 2 + 2?

    Assistant:

and stops when the model starts the next user turn ("\\nUser:", see PLAIN_STOP). Templates run
in a sandboxed Jinja environment, as transformers runs them. bos_token and eos_token are given
as "" because the engine's tokenizer adds BOS itself; the turn markers a model's own template
writes are parsed as control tokens (Tokenizer.encode(parse_special=True)).
"""

from __future__ import annotations

import functools

PLAIN = "plain"
PLAIN_TEMPLATE = (
    "{% for message in messages %}"
    "{{ message['role'] | capitalize }}: {{ message['content'] }}\n\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}Assistant:{% endif %}"
)
PLAIN_STOP = ("\nUser:",)


class TemplateError(ValueError):
    """The template refused the conversation (e.g. roles that do not alternate)."""


def render_chat(messages: list[dict], template: str) -> str:
    """The prompt for `messages` ([{role, content}]); "developer" is treated as "system"."""
    messages = [{**m, "role": "system" if m["role"] == "developer" else m["role"]} for m in messages]
    import jinja2

    try:
        return _compile(template).render(messages=messages, add_generation_prompt=True,
                                         bos_token="", eos_token="")
    except jinja2.TemplateError as e:
        raise TemplateError(f"the chat template rejected the messages: {e}") from None


def choose_template(model_template: str | None, override: str | None) -> tuple[str, str]:
    """(template, description): the override (a file or "plain"), the model's, or plain."""
    if override == PLAIN or (override is None and not model_template):
        return PLAIN_TEMPLATE, "plain (System:/User:/Assistant: turns)"
    if override is not None:
        from pathlib import Path

        return Path(override).read_text(encoding="utf-8"), f"from {override}"
    return model_template, "the target model's"


def stop_strings(template: str) -> tuple[str, ...]:
    """Stop strings a template implies: the plain one must stop at the next user turn."""
    return PLAIN_STOP if template == PLAIN_TEMPLATE else ()


@functools.lru_cache(maxsize=8)
def _compile(template: str):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = _raise
    return env.from_string(template)


def _raise(message: str):
    import jinja2

    raise jinja2.TemplateError(message)
