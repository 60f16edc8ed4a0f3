"""The OpenAI wire format: checking request bodies and shaping responses.

Request bodies are checked by pydantic models, with no language model involved, so every rule
is unit-tested without loading anything. A bad request raises RequestError, which the app
turns into the OpenAI error shape {"error": {"message", "type", "param", "code"}} naming the
field at fault.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    model_validator,
)
from pydantic_core import PydanticCustomError

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


# --- the body as JSON ------------------------------------------------------------------------

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


# --- request bodies: the schema --------------------------------------------------------------
# Every error a field can have ends up as one naming it, worded for the client (expect()):
# "max_tokens must be an integer from 1 to 4096, got a string". Values that depend on what is
# served (the context, the methods) are checked against the Limits given as validation context.

OWN_ERRORS = {"expected", "unknown_field", "refused", "missing"}  # already name the field at fault


def expect(what: str, within: str | None = None, whole: bool = False, quote: bool = False) -> WrapValidator:
    """Turn any error of a field into "<field> must be <what>, got <what was sent>".

    `within`: a Limits field the value must be in (a tuple) or at most (a number); `what` may
    name Limits fields as {n_ctx}. An error of a field inside the value (a message's role) is
    passed on as it is, unless `whole`. `quote`: show a short string as sent."""
    def validate(value, handler, info: ValidationInfo):
        try:
            checked = handler(value)
        except ValidationError as e:
            if not whole and e.errors()[0]["type"] in OWN_ERRORS:
                raise
        else:
            bound = getattr(info.context, within) if within else None
            if bound is None or (checked in bound if isinstance(bound, tuple) else checked <= bound):
                return checked
        got = json.dumps(value) if quote and isinstance(value, str) and len(value) <= 64 else _json_type(value)
        raise PydanticCustomError("expected", f"must be {_fill(what, info.context)}, got {got}")

    return WrapValidator(validate)


def refused(message: str, field: str | None = None, code: str | None = None) -> PydanticCustomError:
    """A value the server does not take although it is of the right type. `field`: the field
    at fault, when an object refuses one of its own."""
    return PydanticCustomError("refused", message, {"field": field, "code": code})


def _fill(text: str, limits: Limits) -> str:
    """`text` with {n_ctx}, {methods}, ... replaced by what the server serves."""
    for name, value in vars(limits).items():
        text = text.replace("{" + name + "}", ", ".join(value) if isinstance(value, tuple) else str(value))
    return text


def _integral(value):
    return int(value) if isinstance(value, float) and value.is_integer() else value  # 16.0 is 16 in JSON


def _served(model: str, info: ValidationInfo) -> str:
    if model not in info.context.models:
        raise PydanticCustomError("model_not_found", f"the model '{model}' does not exist on this server; "
                                                     f"it serves: {', '.join(info.context.models)}")
    return model


def _runnable(method: str, info: ValidationInfo) -> str:
    if method in info.context.unavailable:
        raise refused(f"method {method} cannot run on this server: {info.context.unavailable[method]}")
    return method


def _one_prompt(prompt, info: ValidationInfo) -> str | list[int]:
    if isinstance(prompt, str):
        return prompt
    if not prompt:
        raise refused("prompt is an empty list; give a string or a list of token ids")
    if isinstance(prompt[0], str):
        if len(prompt) > 1:
            raise refused(f"a batch of {len(prompt)} prompts is not supported; send one prompt per "
                          "request (use n for several completions)")
        return prompt[0]
    if isinstance(prompt[0], list):
        raise refused("a batch of token-id prompts is not supported; send one prompt per request")
    vocab_size = info.context.vocab_size
    for token in prompt:
        if not 0 <= token < vocab_size:
            raise refused(f"token id {token} is outside the vocabulary (0 to {vocab_size - 1})")
    return prompt


Int = Annotated[int, BeforeValidator(_integral)]
Tokens = Annotated[Int, Field(ge=1), expect("an integer from 1 to {n_ctx}", within="n_ctx")]


class JSONObject(BaseModel):
    """A JSON object: a field sent as null counts as absent; one the object lacks is refused."""

    model_config = ConfigDict(strict=True)  # no "8" for 8, no true for 1
    takes: ClassVar[str]  # said of a field the object lacks

    @model_validator(mode="before")
    @classmethod
    def _known_fields(cls, data):
        if not isinstance(data, dict):
            return data  # the field holding this object says what it must be
        for name, value in data.items():
            if name not in cls.model_fields and (error := cls._not_a_field(name, value)):
                raise error
        return {name: value for name, value in data.items() if value is not None and name in cls.model_fields}

    @classmethod
    def _not_a_field(cls, name: str, value) -> PydanticCustomError | None:
        """The error for a field the object lacks; None: leave it out."""
        return PydanticCustomError("unknown_field", cls.takes, {"field": name})


class TextPart(BaseModel):
    model_config = ConfigDict(strict=True)
    type: Literal["text"]
    text: str


class Message(JSONObject):
    takes = "is not supported (tool calls and other message fields are not); give role and content"
    role: Annotated[Literal[CHAT_ROLES], expect(f"one of {', '.join(CHAT_ROLES)}", quote=True)]
    content: Annotated[  # a string is one text part
        list[Annotated[TextPart, expect('a text part ({"type": "text", "text": "..."}); only text is supported',
                                        whole=True)]],
        Field(min_length=1),
        BeforeValidator(lambda content: [{"type": "text", "text": content}] if isinstance(content, str) else content),
        expect("a string or a non-empty list of text parts")]
    name: Annotated[str, expect("a string")] | None = None  # passed to the template, which may use it

    def for_template(self) -> dict:
        text = "".join(part.text for part in self.content)
        return {"role": self.role, "content": text} | ({} if self.name is None else {"name": self.name})


class StreamOptions(JSONObject):
    takes = "is unknown; stream_options takes include_usage"
    include_usage: Annotated[bool, expect("true or false")] = False


class Speculative(JSONObject):
    """The per-request extension {"speculative": {"method": ..., "draft_length": ...}}."""

    takes = "is unknown; speculative takes method and draft_length"
    method: Annotated[str, expect("one of {methods} on this server", within="methods", quote=True),
                      AfterValidator(_runnable)] | None = None
    draft_length: Annotated[Annotated[int, Field(ge=1, le=MAX_DRAFT_LENGTH)] | Literal[DRAFT_LENGTH_NAMES],
                            expect(f'"auto", "adaptive" or an integer from 1 to {MAX_DRAFT_LENGTH}',
                                   quote=True)] | None = None


class RequestBody(JSONObject):
    """What completions and chat completions share."""

    model: Annotated[str, expect("a string"), AfterValidator(_served),
                     Field(description="this server serves: {models}")]
    max_tokens: Tokens | None = None  # None: the server's default, cut to the context left
    temperature: Annotated[float, Field(ge=0, le=2, allow_inf_nan=False), expect("a number from 0 to 2")] = 1.0
    top_p: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False),
                     expect("a number greater than 0 and at most 1")] = 1.0
    top_k: Annotated[Int, Field(ge=0), expect("an integer >= 0")] = 0
    seed: Annotated[Int, Field(ge=0, le=MAX_SEED), expect(f"an integer from 0 to {MAX_SEED}")] | None = None
    stop: Annotated[list[str], Field(max_length=MAX_STOP),
                    BeforeValidator(lambda stop: [stop] if isinstance(stop, str) else stop),
                    expect(f"a string or a list of at most {MAX_STOP} strings")] = []
    n: Annotated[Int, Field(ge=1), expect("an integer from 1 to {max_n}", within="max_n")] = 1
    stream: Annotated[bool, expect("true or false")] = False
    stream_options: Annotated[StreamOptions, expect('{"include_usage": true|false}')] | None = None
    speculative: Annotated[Speculative, expect('an object: {"method": "...", "draft_length": 4}')] | None = None
    user: Annotated[str, expect("a string (an id for the end user)")] | None = None  # no effect

    @classmethod
    def _not_a_field(cls, name: str, value) -> PydanticCustomError | None:
        if name not in NEUTRAL:
            return PydanticCustomError(
                "unknown_field", "is an unknown or unsupported parameter; this server accepts: "
                + ", ".join(sorted(cls.model_fields)), {"field": name, "code": "unsupported_parameter"})
        if any(_same(value, off) for off in NEUTRAL[name]):
            return None
        off = " or ".join(json.dumps(v) for v in NEUTRAL[name])
        return refused(f"{name} is not supported by this server (only {off} is accepted, which means off)",
                       name, "unsupported_parameter")

    @model_validator(mode="after")
    def _stream_options_need_stream(self):
        """A usage chunk ends a stream only when asked, as OpenAI does (a chunk with no choices
        breaks clients that read chunk.choices[0] from every chunk)."""
        if self.stream_options is not None and not self.stream:
            raise refused("stream_options is only allowed with stream: true", "stream_options")
        return self

    def request(self, kind: str, **fields) -> GenerationRequest:
        spec = self.speculative or Speculative()
        return GenerationRequest(
            kind=kind, model=self.model, sampling=SamplingParams(self.temperature, self.top_k, self.top_p, self.seed),
            stop=[s for s in self.stop if s], n=self.n, stream=self.stream,
            include_usage=self.stream_options is not None and self.stream_options.include_usage,
            method=spec.method, draft_length=spec.draft_length, **fields)


class CompletionBody(RequestBody):
    prompt: Annotated[str | list[str] | list[list] | list[StrictInt], expect("a string or a list of token ids"),
                      AfterValidator(_one_prompt), Field(description="a string, or a list of token ids")]


class ChatBody(RequestBody):
    messages: Annotated[list[Annotated[Message, expect("an object with role and content")]],
                        Field(min_length=1, description="a list of {role, content} objects"),
                        expect("a non-empty list of {role, content} objects")]
    max_completion_tokens: Tokens | None = None  # wins over max_tokens


def parse_completion(body: dict, limits: Limits) -> GenerationRequest:
    b = _validate(CompletionBody, body, limits)
    return b.request("completion", prompt=b.prompt, max_tokens=b.max_tokens)


def parse_chat(body: dict, limits: Limits) -> GenerationRequest:
    b = _validate(ChatBody, body, limits)
    max_tokens = b.max_tokens if b.max_completion_tokens is None else b.max_completion_tokens
    return b.request("chat", messages=[m.for_template() for m in b.messages], max_tokens=max_tokens)


def _validate(schema: type[RequestBody], body: dict, limits: Limits) -> RequestBody:
    """The body as `schema`, or a RequestError for its first error, naming the field."""
    try:
        return schema.model_validate(body, context=limits)
    except ValidationError as e:
        error = e.errors(include_url=False)[0]
    kind, message, ctx = error["type"], error["msg"], error.get("ctx") or {}
    loc = error["loc"] + ((ctx["field"],) if ctx.get("field") else ())
    param = "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in loc).lstrip(".") or None
    if kind == "model_not_found":
        raise RequestError(404, message, "model", "model_not_found")
    if kind == "missing":
        what = schema.model_fields[loc[0]].description if len(loc) == 1 else None
        message = "is required" + (f" ({_fill(what, limits)})" if what else "")
    if kind != "refused":
        message = f"{param} {message}"
    raise bad(param, message, ctx.get("code"))


def _same(a, b) -> bool:
    """JSON equality where true is not 1 and false is not 0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return a == b


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
        return "a list" if value else "an empty list"
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
