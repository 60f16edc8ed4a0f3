"""A property-based fuzzer over request bodies for POST /v1/completions and
/v1/chat/completions, against the app in-process over toy models (tests/server/toy_server.py).

Whatever the body (random JSON, fields of the wrong type, deep nesting, strings with lone
surrogates, token ids out of range, odd stop strings, n, max_tokens, streaming or not), the
server must answer: never a 5xx, every error in the OpenAI shape, every stream well formed
and ending in [DONE], and no generation failing inside the engine with a server error.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from toy_server import MODEL, SPLIT_TARGET_PIECES, is_openai_error, sse_events, toy_client

from anyspec.config import METHODS

# a numeric warning in the engine (overflow, NaN) fails the generation, so the fuzzer sees it
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")
VOCAB = len(SPLIT_TARGET_PIECES)  # the larger target vocabulary
FUZZ = settings(max_examples=200, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module", params=[False, True], ids=["whole-chars", "split-bytes"])
def client(request):
    """The toy target reads "é" as one token, or as two byte tokens (split-bytes): then it
    also generates bytes that are not text, and token-id prompts may hold them."""
    with toy_client(max_n=4, split_bytes=request.param) as c:
        yield c


# --- strategies ------------------------------------------------------------------------------
# A body is mostly valid, so that requests reach the engine with every option; then it may
# get one field replaced by any JSON value, or an extra field; some bodies are raw bytes.

# any code point, lone surrogates included (json.dumps writes them as \\ud800 escapes)
odd_text = st.one_of(st.text(st.characters(exclude_categories=()), max_size=12),
                     st.sampled_from(["\ud800", "a\udfffb", "\ud83d", "\ude00x", "\x00", "\u2028"]))
# text made of the toy tokenizer's pieces (and a few it lacks: "z", "\n", ":")
toy_text = st.lists(st.sampled_from(["a", "b", "c", "ab", " ", "é", "z", "\n", "User:"]),
                    max_size=8).map("".join)
strings = st.one_of(toy_text, toy_text, toy_text, odd_text)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), strings)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(strings, inner, max_size=4)), max_leaves=12)

token_ids = st.one_of(st.lists(st.integers(0, VOCAB - 1), min_size=1, max_size=8),
                      st.lists(st.integers(-3, VOCAB + 3), max_size=8))  # out of range, empty
prompts = st.one_of(toy_text, toy_text, strings, token_ids, st.lists(strings, min_size=1, max_size=2),
                    st.lists(token_ids, max_size=2))
text_part = st.fixed_dictionaries({"type": st.just("text"), "text": strings})
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "developer", "user", "assistant"]),
     "content": st.one_of(strings, st.lists(text_part, min_size=1, max_size=3))},
    optional={"name": toy_text})
speculative = st.fixed_dictionaries({}, optional={
    "method": st.sampled_from(["auto", *METHODS]),
    "draft_length": st.one_of(st.integers(1, 8), st.sampled_from(["auto", "adaptive"]))})
common = {
    "max_tokens": st.one_of(st.integers(1, 16), st.integers(1, 80)),
    "temperature": st.one_of(st.just(0), st.floats(0, 2), st.floats(0, 1e-30)),
    "top_p": st.floats(0.01, 1),
    "top_k": st.integers(0, VOCAB + 2),
    "seed": st.integers(0, 2**63 - 1),
    "stop": st.one_of(strings, st.lists(strings, max_size=4)),
    "n": st.integers(1, 4),
    "stream": st.booleans(),
    "stream_options": st.fixed_dictionaries({}, optional={"include_usage": st.booleans()}),
    "speculative": speculative,
    "user": strings,
    "presence_penalty": st.just(0), "logprobs": st.none(), "response_format": st.just({"type": "text"}),
}
completion_bodies = st.fixed_dictionaries({"model": st.just(MODEL), "prompt": prompts}, optional=common)
chat_bodies = st.fixed_dictionaries(
    {"model": st.just(MODEL), "messages": st.lists(message, min_size=1, max_size=3)},
    optional={**common, "max_completion_tokens": st.integers(1, 16)})
FIELDS = sorted({*common, "model", "prompt", "messages", "max_completion_tokens", "tools", "echo"})


@st.composite
def requests(draw, bodies) -> bytes:
    body = draw(bodies)
    if body.get("stream") is not True and "stream_options" in body and draw(st.booleans()):
        del body["stream_options"]  # mostly: it is only allowed when streaming
    change = draw(st.sampled_from(["none", "none", "none", "field", "field", "drop", "extra"]))
    if change == "field":
        body[draw(st.sampled_from(FIELDS))] = draw(json_values)
    elif change == "drop":
        body.pop(draw(st.sampled_from(sorted(body))))
    elif change == "extra":
        body[draw(strings)] = draw(json_values)
    return json.dumps(body).encode()


def raw(bodies):
    """Bodies as sent: mostly the JSON of a (changed) request, sometimes any bytes."""
    return st.one_of(
        requests(bodies), requests(bodies), requests(bodies), requests(bodies), requests(bodies),
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=40),
        st.integers(1, 5000).map(lambda n: b'{"model": "toy", "prompt": ' + b"[" * n + b"]" * n + b"}"))


# --- the property ----------------------------------------------------------------------------

def check(client, path: str, body: bytes) -> None:
    r = client.post(path, content=body, headers={"content-type": "application/json"})
    assert r.status_code < 500, (r.status_code, r.text, body)
    if r.status_code != 200:
        assert is_openai_error(r.json()), (r.status_code, r.text, body)
        return
    if not r.headers["content-type"].startswith("text/event-stream"):
        answer = r.json()
        assert answer["choices"] and answer["usage"]["completion_tokens"] >= 0, (answer, body)
        return
    events = sse_events(r.text)
    assert events and events[-1] == "[DONE]", (r.text, body)
    for event in map(json.loads, events[:-1]):
        if "error" in event:  # a failure after the status line went out
            assert is_openai_error(event) and event["error"]["type"] != "server_error", (event, body)
        elif not event["choices"]:  # the usage chunk, asked for
            assert event["usage"]["completion_tokens"] >= 0, (event, body)
        else:
            choice = event["choices"][0]
            has_text = choice.get("text") or choice.get("delta", {}).get("content")
            assert has_text or choice["finish_reason"] or choice.get("delta", {}).get("role"), (event, body)


@FUZZ
@given(body=raw(completion_bodies))
def test_completions_never_fail_on_the_server(client, body):
    check(client, "/v1/completions", body)


@FUZZ
@given(body=raw(chat_bodies))
def test_chat_completions_never_fail_on_the_server(client, body):
    check(client, "/v1/chat/completions", body)
