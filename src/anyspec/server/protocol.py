"""The OpenAI wire format: checking request bodies and shaping responses.

Pure functions of plain dicts, no models, so every rule is unit-tested without loading
anything. A bad request raises RequestError, which the app turns into the OpenAI error shape
{"error": {"message", "type", "param", "code"}} naming the field at fault.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field

from ..errors import AnyspecError
from ..sampling import SamplingParams

MAX_STOP = 4  # as OpenAI
MAX_DRAFT_LENGTH = 64
DRAFT_LENGTH_NAMES = ("auto", "adaptive")  # the engine's controllers (control/draft_length.py)
MAX_SEED = 2**63 - 1
MAX_JSON_DEPTH = 64  # a request body's nesting; real requests need under 10

# Parameters this server cannot honour. A request may send them only with the value that
# means "off" (clients often send defaults); any other value is rejected, never ignored.
NEUTRAL = {
    "presence_penalty": (None, 0, 0.0),
    "frequency_penalty": (None, 0, 0.0),
    "logprobs": (None, False, 0),
    "top_logprobs": (None, 0),
    "logit_bias": (None, {}),
    "best_of": (None, 1),
    "echo": (None, False),
    "suffix": (None, ""),
    "tools": (None, []),
    "functions": (None, []),
    "tool_choice": (None, "none", "auto"),
    "function_call": (None, "none", "auto"),
    "parallel_tool_calls": (None, True, False),
    "response_format": (None, {"type": "text"}),
    "store": (None, False),
}
ACCEPTED_ANYWHERE = {"model", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "n",
                     "stream", "stream_options", "speculative", "user"}  # user: an id, no effect
COMPLETION_FIELDS = ACCEPTED_ANYWHERE | {"prompt"}
CHAT_FIELDS = ACCEPTED_ANYWHERE | {"messages", "max_completion_tokens"}
CHAT_ROLES = ("system", "developer", "user", "assistant")


class RequestError(Exception):
    """An error answered to the client: HTTP status plus the OpenAI error object."""

    def __init__(self, status: int, message: str, param: str | None = None,
                 code: str | None = None, type: str = "invalid_request_error",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type
        self.headers = headers or {}

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


def error_body(message: str, type: str = "invalid_request_error", param: str | None = None,
               code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def bad(param: str | None, message: str, code: str | None = None) -> RequestError:
    return RequestError(400, message, param, code)


@dataclass(frozen=True)
class Limits:
    """What the server is serving, as far as checking a request needs to know."""

    models: tuple[str, ...]  # names a request may give as "model"
    n_ctx: int
    vocab_size: int
    methods: tuple[str, ...]  # speculative method names (auto included)
    max_n: int = 8
    unavailable: dict[str, str] = field(default_factory=dict)  # method -> why it cannot run here


@dataclass
class GenerationRequest:
    kind: str  # "completion" or "chat"
    model: str
    prompt: str | list[int] | None = None  # completions: text or target token ids
    messages: list[dict] | None = None  # chat: [{"role", "content": str}]
    max_tokens: int | None = None  # None: the server's default, clipped to the context left
    sampling: SamplingParams = field(default_factory=SamplingParams)
    stop: list[str] = field(default_factory=list)
    n: int = 1
    stream: bool = False
    include_usage: bool = False  # streaming: send the usage chunk (stream_options.include_usage)
    method: str | None = None  # speculative method; None: the server's default
    draft_length: int | str | None = None  # int, "auto" or "adaptive"; None: the server's default

    def choice_sampling(self, index: int) -> SamplingParams:
        """Choice i of n samples with seed + i, so choices differ but a seed reproduces all."""
        s = self.sampling
        seed = None if s.seed is None else (s.seed + index) % (MAX_SEED + 1)
        return SamplingParams(s.temperature, s.top_k, s.top_p, seed)


# --- parsing ---------------------------------------------------------------------------------

def parse_json_body(raw: bytes) -> dict:
    def no_constants(name: str):
        raise ValueError(f"{name} is not valid JSON")

    try:
        body = json.loads(raw, parse_constant=no_constants)
    except (ValueError, UnicodeDecodeError) as e:
        raise bad(None, f"the request body is not valid JSON: {e}", "invalid_json") from None
    except RecursionError:  # the parser's own limit, far below what a body could nest
        raise _too_deep(None) from None
    if not isinstance(body, dict):
        raise bad(None, f"the request body must be a JSON object, got {_json_type(body)}", "invalid_json")
    _check_json_values(body)
    return body


def _check_json_values(body: dict) -> None:
    """Refuse what json.loads accepts but no field can hold: a string with a lone surrogate
    (an escape such as \\ud800 that is not half of a pair: not text, it cannot be encoded as
    UTF-8), and nesting deeper than MAX_JSON_DEPTH. Walked with a list, not recursion, and
    in the body's order, so the first bad field is the one named."""
    todo: list[tuple[str | None, object, int]] = [(None, body, 1)]
    while todo:
        path, value, depth = todo.pop()
        if isinstance(value, str):
            if _has_lone_surrogate(value):
                raise _lone_surrogate(path, path)
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            raise _too_deep(path)
        if isinstance(value, dict):
            for key in value:
                if _has_lone_surrogate(key):
                    where = f"an object in {path}" if path else "the request body"
                    raise _lone_surrogate(path, f"a field name in {where}")
            children = [(key if path is None else f"{path}.{key}", v) for key, v in value.items()]
        else:
            children = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
        todo.extend((p, v, depth + 1) for p, v in reversed(children))


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _lone_surrogate(path: str | None, what: str) -> RequestError:
    return bad(path, f"{what} holds a lone UTF-16 surrogate (an escape from \\ud800 to \\udfff "
                     "that is not half of a pair), which is not text; send valid Unicode",
               "invalid_unicode")


def _too_deep(path: str | None) -> RequestError:
    where = f"{path} is" if path else "the request body is"
    return bad(path, f"{where} nested too deeply: at most {MAX_JSON_DEPTH} levels of lists and "
                     "objects are accepted", "invalid_json")


def parse_completion(body: dict, limits: Limits) -> GenerationRequest:
    _check_fields(body, COMPLETION_FIELDS)
    req = _parse_common(body, limits, "completion")
    req.prompt = _prompt(body, limits)
    req.max_tokens = _int(body, "max_tokens", 1, limits.n_ctx)
    return req


def parse_chat(body: dict, limits: Limits) -> GenerationRequest:
    _check_fields(body, CHAT_FIELDS)
    req = _parse_common(body, limits, "chat")
    req.messages = _messages(body)
    mct = _int(body, "max_completion_tokens", 1, limits.n_ctx)
    req.max_tokens = mct if mct is not None else _int(body, "max_tokens", 1, limits.n_ctx)
    return req


def _check_fields(body: dict, allowed: set[str]) -> None:
    for name, value in body.items():
        if name in allowed:
            continue
        if name in NEUTRAL:
            if not any(_same(value, v) for v in NEUTRAL[name]):
                raise bad(name, f"{name} is not supported by this server (only "
                                f"{_neutral_text(name)} is accepted, which means off)", "unsupported_parameter")
            continue
        raise bad(name, f"unknown or unsupported parameter '{name}'; this server accepts: "
                        f"{', '.join(sorted(allowed))}", "unsupported_parameter")


def _same(a, b) -> bool:
    """JSON equality where true is not 1 and false is not 0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


def _neutral_text(name: str) -> str:
    return " or ".join(json.dumps(v) for v in NEUTRAL[name])


def _parse_common(body: dict, limits: Limits, kind: str) -> GenerationRequest:
    model = body.get("model")
    if model is None:
        raise bad("model", f"model is required; this server serves: {', '.join(limits.models)}")
    if not isinstance(model, str):
        raise bad("model", f"model must be a string, got {_json_type(model)}")
    if model not in limits.models:
        raise RequestError(404, f"the model '{model}' does not exist on this server; it serves: "
                                f"{', '.join(limits.models)}", "model", "model_not_found")
    temperature = _number(body, "temperature", 0.0, 2.0, default=1.0)
    top_p = _number(body, "top_p", 0.0, 1.0, default=1.0, low_open=True)
    top_k = _int(body, "top_k", 0, None, default=0)
    seed = _int(body, "seed", 0, MAX_SEED)
    method, draft_length = _speculative(body, limits)
    stream = _bool(body, "stream", False)
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise bad("user", f"user must be a string (an id for the end user), got {_json_type(user)}")
    return GenerationRequest(
        kind=kind, model=model, sampling=SamplingParams(temperature, top_k, top_p, seed),
        stop=_stop(body), n=_int(body, "n", 1, limits.max_n, default=1), stream=stream,
        include_usage=_stream_options(body, stream), method=method, draft_length=draft_length)


def _prompt(body: dict, limits: Limits) -> str | list[int]:
    if "prompt" not in body or body["prompt"] is None:
        raise bad("prompt", "prompt is required (a string, or a list of token ids)")
    prompt = body["prompt"]
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        if len(prompt) > 1:
            raise bad("prompt", f"a batch of {len(prompt)} prompts is not supported; send one "
                                "prompt per request (use n for several completions)")
        return prompt[0]
    if isinstance(prompt, list) and prompt and all(_is_int(t) for t in prompt):
        out_of_range = [t for t in prompt if not 0 <= t < limits.vocab_size]
        if out_of_range:
            raise bad("prompt", f"token id {out_of_range[0]} is outside the vocabulary "
                                f"(0 to {limits.vocab_size - 1})")
        return list(prompt)
    if isinstance(prompt, list) and prompt and all(isinstance(p, list) for p in prompt):
        raise bad("prompt", "a batch of token-id prompts is not supported; send one prompt per request")
    if isinstance(prompt, list) and not prompt:
        raise bad("prompt", "prompt is an empty list; give a string or a list of token ids")
    raise bad("prompt", f"prompt must be a string or a list of token ids, got {_json_type(prompt)}")


def _messages(body: dict) -> list[dict]:
    messages = body.get("messages")
    if messages is None:
        raise bad("messages", "messages is required: a list of {role, content} objects")
    if not isinstance(messages, list):
        raise bad("messages", f"messages must be a list, got {_json_type(messages)}")
    if not messages:
        raise bad("messages", "messages is empty; give at least one message")
    out = []
    for i, m in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(m, dict):
            raise bad(where, f"{where} must be an object with role and content, got {_json_type(m)}")
        extra = set(m) - {"role", "content", "name"}
        if extra:
            raise bad(f"{where}.{sorted(extra)[0]}", f"{where}.{sorted(extra)[0]} is not supported "
                      "(tool calls and other message fields are not); give role and content")
        role = m.get("role")
        if role not in CHAT_ROLES:
            raise bad(f"{where}.role", f"{where}.role must be one of {', '.join(CHAT_ROLES)}, got "
                                       f"{json.dumps(role)}")
        message = {"role": role, "content": _content(m.get("content"), f"{where}.content")}
        if m.get("name") is not None:  # passed to the template, which may use it
            if not isinstance(m["name"], str):
                raise bad(f"{where}.name", f"{where}.name must be a string, got {_json_type(m['name'])}")
            message["name"] = m["name"]
        out.append(message)
    return out


def _content(content, where: str) -> str:
    """A message's text: a string, or a list of text parts joined (images etc. are refused)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise bad(f"{where}[{j}]", f"{where}[{j}] must be a text part "
                                           '({"type": "text", "text": "..."}); only text is supported')
            texts.append(part["text"])
        return "".join(texts)
    raise bad(where, f"{where} must be a string or a non-empty list of text parts, got "
                     f"{_json_type(content)}")


def _stop(body: dict) -> list[str]:
    stop = body.get("stop")
    if stop is None:
        return []
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise bad("stop", f"stop must be a string or a list of strings, got {_json_type(body['stop'])}")
    if len(stop) > MAX_STOP:
        raise bad("stop", f"stop takes at most {MAX_STOP} strings, got {len(stop)}")
    return [s for s in stop if s]


def _stream_options(body: dict, stream: bool) -> bool:
    """Whether to end a stream with a usage chunk: only when asked, as OpenAI does (a chunk
    with no choices breaks clients that read chunk.choices[0] from every chunk)."""
    options = body.get("stream_options")
    if options is None:
        return False
    if not stream:
        raise bad("stream_options", "stream_options is only allowed with stream: true")
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise bad("stream_options", 'stream_options must be {"include_usage": true|false}')
    include = options.get("include_usage", False)
    if include is not None and not isinstance(include, bool):
        raise bad("stream_options.include_usage", "stream_options.include_usage must be true or false")
    return bool(include)


def _speculative(body: dict, limits: Limits) -> tuple[str | None, int | str | None]:
    """The per-request extension {"speculative": {"method": ..., "draft_length": ...}}."""
    spec = body.get("speculative")
    if spec is None:
        return None, None
    if not isinstance(spec, dict):
        raise bad("speculative", 'speculative must be an object: {"method": "...", "draft_length": 4}')
    extra = set(spec) - {"method", "draft_length"}
    if extra:
        raise bad(f"speculative.{sorted(extra)[0]}", f"speculative.{sorted(extra)[0]} is unknown; "
                                                     "speculative takes method and draft_length")
    method = spec.get("method")
    if method is not None and method not in limits.methods:
        raise bad("speculative.method", f"speculative.method must be one of "
                                        f"{', '.join(limits.methods)} on this server, got {json.dumps(method)}")
    if method in limits.unavailable:
        raise bad("speculative.method", f"method {method} cannot run on this server: "
                                        f"{limits.unavailable[method]}")
    k = spec.get("draft_length")
    if k is not None and k not in DRAFT_LENGTH_NAMES and not (_is_int(k) and 1 <= k <= MAX_DRAFT_LENGTH):
        raise bad("speculative.draft_length", f'speculative.draft_length must be "auto", "adaptive" '
                                              f"or an integer from 1 to {MAX_DRAFT_LENGTH}, got {json.dumps(k)}")
    return method, k


# --- typed fields ----------------------------------------------------------------------------

def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _int(body: dict, name: str, low: int, high: int | None, default: int | None = None) -> int | None:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # 16.0 is an integer in JSON's eyes
    span = f"from {low} to {high}" if high is not None else f">= {low}"
    if not _is_int(value):
        raise bad(name, f"{name} must be an integer {span}, got {_json_type(value)}")
    if value < low or (high is not None and value > high):
        raise bad(name, f"{name} must be an integer {span}, got {value}")
    return value


def _number(body: dict, name: str, low: float, high: float, default: float,
            low_open: bool = False) -> float:
    value = body.get(name)
    if value is None:
        return default
    span = f"{'greater than' if low_open else 'from'} {low:g} {'and at most' if low_open else 'to'} {high:g}"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise bad(name, f"{name} must be a number {span}, got {_json_type(value)}")
    if value < low or value > high or (low_open and value == low):
        raise bad(name, f"{name} must be a number {span}, got {value}")
    return float(value)


def _bool(body: dict, name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad(name, f"{name} must be true or false, got {_json_type(value)}")
    return value


def _json_type(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


# --- checks that need the tokenized prompt ---------------------------------------------------

def resolve_max_tokens(req: GenerationRequest, prompt_tokens: int, n_ctx: int, default: int) -> int:
    """The token budget: what was asked if it fits in the context, else a 400 naming the field."""
    param = "messages" if req.kind == "chat" else "prompt"
    if prompt_tokens >= n_ctx:
        raise bad(param, f"the prompt is {prompt_tokens} tokens but the model's context is {n_ctx} "
                         "tokens, which leaves no room to generate; shorten the prompt",
                  "context_length_exceeded")
    room = n_ctx - prompt_tokens
    if req.max_tokens is None:
        return min(default, room)
    if req.max_tokens > room:
        name = "max_tokens" if req.kind == "completion" else "max_tokens/max_completion_tokens"
        raise bad(name, f"this model's context is {n_ctx} tokens; the prompt takes {prompt_tokens}, "
                        f"so at most {room} can be generated, but {name} is {req.max_tokens}",
                  "context_length_exceeded")
    return req.max_tokens


# --- responses -------------------------------------------------------------------------------

def finish_reason(engine_reason: str) -> str:
    return "length" if engine_reason in ("length", "context") else "stop"


def speculative_usage(method: str, draft_length, stats_list) -> dict:
    """Speculative statistics summed over a request's choices (stats: GenerationStats)."""
    steps = sum(s.rounds for s in stats_list)
    drafted = sum(s.drafted for s in stats_list)
    accepted = sum(s.accepted for s in stats_list)
    width = max((len(s.accepted_at) for s in stats_list), default=0)
    per_position = [sum(s.accepted_at[i] for s in stats_list if i < len(s.accepted_at)) for i in range(width)]
    return {
        "method": method,
        "draft_length": draft_length,
        "steps": steps,  # target passes after the prompt
        "draft_tokens": drafted,
        "accepted_tokens": accepted,
        "accepted_tokens_per_position": per_position,
        "mean_acceptance_length": 1 + accepted / steps if steps else 0.0,
        "acceptance_rate": accepted / drafted if drafted else 0.0,
    }


def usage(prompt_tokens: int, completion_tokens: int, speculative: dict) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens, "speculative": speculative}


def new_id(kind: str) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + uuid.uuid4().hex


def response_body(kind: str, rid: str, model: str, texts: list[str], reasons: list[str],
                  usage_: dict) -> dict:
    if kind == "chat":
        choices = [{"index": i, "message": {"role": "assistant", "content": t},
                    "logprobs": None, "finish_reason": r} for i, (t, r) in enumerate(zip(texts, reasons))]
        obj = "chat.completion"
    else:
        choices = [{"index": i, "text": t, "logprobs": None, "finish_reason": r}
                   for i, (t, r) in enumerate(zip(texts, reasons))]
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model,
            "choices": choices, "usage": usage_}


def chunk_body(kind: str, rid: str, model: str, index: int, text: str | None = None,
               finish: str | None = None, role: bool = False) -> dict:
    """One streamed chunk: a text piece, the opening role (chat), or the finish reason."""
    if kind == "chat":
        delta = {"role": "assistant", "content": ""} if role else ({"content": text} if text else {})
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}
        obj = "chat.completion.chunk"
    else:
        choice = {"index": index, "text": text or "", "logprobs": None, "finish_reason": finish}
        obj = "text_completion"
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": [choice]}


def usage_chunk_body(kind: str, rid: str, model: str, usage_: dict) -> dict:
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
    return {"id": rid, "object": obj, "created": int(time.time()), "model": model, "choices": [],
            "usage": usage_}


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


def from_anyspec_error(e: AnyspecError, param: str | None = None) -> RequestError:
    code = "context_length_exceeded" if "context" in str(e) else None
    return RequestError(400, str(e), param, code)
