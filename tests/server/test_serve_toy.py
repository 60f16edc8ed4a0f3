"""`anyspec serve` in-process over toy models (tests/server/toy_server.py): odd bodies get a 400
naming the field, a slow body gets 408, usage chunks only on request, the metrics count as
vLLM's do, and the engine's "" heartbeats between prefill chunks never reach a client."""

import asyncio
import json

import httpx
import openai
import pytest
from fastapi.testclient import TestClient
from serving import metrics_samples
from toy_server import MODEL, is_openai_error, sse_json, toy_app, toy_client

from anyspec.server import protocol as P
from anyspec.server import worker as worker_module
from anyspec.server.app import ErrorResponse

JSON = {"content-type": "application/json"}


@pytest.fixture(scope="module")
def client():
    with toy_client() as c:
        yield c


def post_raw(client, path: str, raw: bytes) -> httpx.Response:
    return client.post(path, content=raw, headers=JSON)


def assert_400(r: httpx.Response, param) -> dict:
    assert r.status_code == 400, (r.status_code, r.text)
    body = r.json()
    assert is_openai_error(body) and body["error"]["param"] == param, body
    return body["error"]


def test_a_toy_completion_works(client):
    r = client.post("/v1/completions", json={"model": MODEL, "prompt": "ab c", "max_tokens": 5,
                                                      "seed": 0})  # unseeded, the end token may come first
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] >= 1


@pytest.mark.parametrize("path,raw,param", [
    ("/v1/completions", rb'{"model": "toy", "prompt": "a\ud800b"}', "prompt"),
    ("/v1/completions", rb'{"model": "toy", "prompt": ["a\udfffb"]}', "prompt[0]"),
    ("/v1/chat/completions", rb'{"model": "toy", "messages": [{"role": "user", "content": "a\ud800b"}]}',
     "messages[0].content"),
    ("/v1/chat/completions", rb'{"model": "toy", "messages": [{"role": "user", "content": '
                             rb'[{"type": "text", "text": "\udc00"}]}]}', "messages[0].content[0].text"),
    ("/v1/completions", rb'{"model": "t\ud800", "prompt": "a"}', "model"),
    ("/v1/completions", rb'{"model": "toy", "prompt": "a", "stop": ["x", "\ud83d"]}', "stop[1]"),
    ("/v1/completions", rb'{"model": "toy", "prompt": "a", "\ud800": 1}', None),
])
def test_a_lone_surrogate_is_a_400_naming_the_field(client, path, raw, param):
    error = assert_400(post_raw(client, path, raw), param)
    assert "surrogate" in error["message"]


def test_a_surrogate_pair_is_one_character(client):
    ok = post_raw(client, "/v1/completions", rb'{"model": "toy", "prompt": "a\ud83d\ude00b", "max_tokens": 2}')
    assert ok.status_code == 200, ok.text


def test_an_error_quoting_a_lone_surrogate_still_renders():
    body = ErrorResponse(P.error_body("no model 'x\ud800'", param="model"), 404).body
    assert json.loads(body)["error"]["message"] == "no model 'x\ud800'"


@pytest.mark.parametrize("raw", [b"[" * 100_000, b'{"a":' * 100_000,
                                 b'{"model": "toy", "prompt": ' + b"[" * 100 + b"]" * 100 + b"}"],
                         ids=["lists", "objects", "a field"])
def test_deep_nesting_is_a_400(client, raw):
    r = post_raw(client, "/v1/completions", raw)
    assert r.status_code == 400 and is_openai_error(r.json()), (r.status_code, r.text[:300])
    assert "nested too deeply" in r.json()["error"]["message"]


@pytest.mark.parametrize("user", [3, ["me"], {"id": "me"}, True])
def test_user_must_be_a_string(client, user):
    assert_400(client.post("/v1/completions", json={"model": MODEL, "prompt": "a", "user": user}), "user")
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "a"}], "user": user}
    assert_400(client.post("/v1/chat/completions", json=chat), "user")
    r = client.post("/v1/completions", json={"model": MODEL, "prompt": "a", "max_tokens": 2, "user": "me"})
    assert r.status_code == 200


def streamed(client, path: str, body: dict) -> list[dict]:
    r = client.post(path, json={**body, "stream": True})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream"), r.text
    return sse_json(r.text)


@pytest.mark.parametrize("path,body", [
    ("/v1/completions", {"model": MODEL, "prompt": "ab", "max_tokens": 6, "n": 2, "seed": 0}),
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "ab"}], "max_tokens": 6,
                              "seed": 0}),
])
def test_the_usage_chunk_comes_only_when_asked(client, path, body):
    for options in (None, {}, {"include_usage": False}, {"include_usage": None}):
        extra = {} if options is None else {"stream_options": options}
        chunks = streamed(client, path, {**body, **extra})
        assert chunks and all(c["choices"] and "usage" not in c for c in chunks), (options, chunks)
    chunks = streamed(client, path, {**body, "stream_options": {"include_usage": True}})
    assert all(c["choices"] for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 1


def test_the_openai_client_can_read_every_chunks_first_choice(client):
    api = openai.OpenAI(base_url=str(client.base_url) + "/v1", api_key="unused", http_client=client)
    kw = dict(model=MODEL, max_tokens=6, temperature=0)
    whole = api.completions.create(prompt="ab", **kw).choices[0].text
    text = ""
    for chunk in api.completions.create(prompt="ab", stream=True, **kw):
        text += chunk.choices[0].text  # the loop of openai's README
    assert text == whole
    messages = [{"role": "user", "content": "ab"}]
    whole = api.chat.completions.create(messages=messages, **kw).choices[0].message.content
    text = ""
    for chunk in api.chat.completions.create(messages=messages, stream=True, **kw):
        text += chunk.choices[0].delta.content or ""
    assert text == whole


def test_a_body_that_trickles_in_gets_408():
    app, worker = toy_app(body_timeout=0.3)
    sent = []

    async def slow_body():
        for part in (b'{"model": "toy", ', b'"prompt": "ab", ', b'"max_tokens": 2}'):
            sent.append(part)
            yield part
            await asyncio.sleep(0.5)

    async def run():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://toy") as c:
            slow = await c.post("/v1/completions", content=slow_body(), headers=JSON)
            fast = await c.post("/v1/completions", json={"model": MODEL, "prompt": "ab", "max_tokens": 2})
            return slow, fast

    try:
        slow, fast = asyncio.run(run())
    finally:
        worker.close()
    assert slow.status_code == 408, slow.text
    assert is_openai_error(slow.json()) and slow.json()["error"]["code"] == "request_timeout"
    assert "--body-timeout" in slow.json()["error"]["message"]
    assert slow.headers.get("connection") == "close"
    assert len(sent) < 3  # given up before the body was all sent
    assert fast.status_code == 200, fast.text


def test_metrics_count_requests_and_drafts_and_name_the_model():
    with toy_client() as c:
        spec = {"method": "tli", "draft_length": 3}
        r = c.post("/v1/completions", json={"model": MODEL, "prompt": "ab", "max_tokens": 8, "n": 3,
                                            "temperature": 1.0, "seed": 1, "speculative": spec})
        assert r.status_code == 200, r.text
        steps = r.json()["usage"]["speculative"]["steps"]
        text = c.get("/metrics").text
    samples = metrics_samples(text)
    assert all('model_name="toy"' in name for name in samples), [n for n in samples if "model_name" not in n]
    success = {name: v for name, v in samples.items() if name.startswith("anyspec:request_success_total")}
    assert sum(success.values()) == 1, success  # one request, though three choices
    drafts = samples['anyspec:spec_decode_num_drafts_total{model_name="toy"}']
    assert 1 <= drafts <= steps
    assert samples['anyspec:num_requests_running{model_name="toy"}'] == 0
    assert samples['anyspec:e2e_request_latency_seconds_count{model_name="toy"}'] == 1
    assert 'anyspec:e2e_request_latency_seconds_bucket{le="+Inf",model_name="toy"}' in samples


# --- the engine's "" heartbeats (between prefill chunks) -----------------------------------

class Heartbeats:
    """Wraps a generator: its stream yields "" `before` times before the text (a long
    prefill), and once before each piece; `yielded` counts the ""s handed out."""

    def __init__(self, gen, before: int) -> None:
        self.gen, self.before, self.yielded = gen, before, 0

    def stream(self, *args):
        inner, outer = self.gen.stream(*args), self

        class Stream:
            result = None

            def __iter__(self):
                for _ in range(outer.before):
                    outer.yielded += 1
                    yield ""
                for piece in inner:
                    outer.yielded += 1
                    yield ""
                    yield piece
                self.result = inner.result

        return Stream()


class Built(list):
    """The Heartbeats the server built, in order; `before`: the ""s each yields first."""

    before = 3


@pytest.fixture
def heartbeats(monkeypatch):
    """From now on the server's generators yield "" between their pieces."""
    built, real = Built(), worker_module.build_generator

    def build(*args, **kwargs):
        built.append(Heartbeats(real(*args, **kwargs), built.before))
        return built[-1]

    monkeypatch.setattr(worker_module, "build_generator", build)
    return built


@pytest.mark.parametrize("path,body", [
    ("/v1/completions", {"model": MODEL, "prompt": "ab", "max_tokens": 8, "temperature": 0, "n": 2}),
    ("/v1/chat/completions", {"model": MODEL, "messages": [{"role": "user", "content": "ab"}],
                              "max_tokens": 8, "temperature": 0}),
])
def test_empty_pieces_are_never_sent_as_chunks(client, heartbeats, path, body):
    whole = client.post(path, json=body)
    assert whole.status_code == 200, whole.text
    chunks = streamed(client, path, body)
    assert heartbeats and all(h.yielded >= 3 for h in heartbeats)
    for c in chunks:
        choice = c["choices"][0]
        if choice["finish_reason"] is None:  # a text chunk, or chat's opening role chunk
            assert choice.get("text") or choice.get("delta", {}).get("content") \
                or choice.get("delta", {}).get("role"), c
    for i, answer in enumerate(whole.json()["choices"]):
        streamed_text = "".join(c["choices"][0].get("text") or c["choices"][0].get("delta", {}).get("content", "")
                                for c in chunks if c["choices"][0]["index"] == i)
        assert streamed_text == answer.get("text", answer.get("message", {}).get("content")), i


def test_a_disconnect_during_prefill_frees_the_engine(heartbeats):
    """A non-streamed request whose client goes away while the prompt is read: the server
    notices at the next "" and stops, long before the prefill would end."""
    heartbeats.before = 10_000
    app, worker = toy_app()
    body = json.dumps({"model": MODEL, "prompt": "ab", "max_tokens": 4}).encode()
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():  # the body; the client goes away once the prefill has begun
        if messages:
            return messages.pop(0)
        if heartbeats and heartbeats[-1].yielded >= 2:
            return {"type": "http.disconnect"}
        await asyncio.Event().wait()  # still connected: nothing comes (the server cancels the wait)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/completions", "raw_path": b"/v1/completions",
             "query_string": b"", "root_path": "", "headers": [(b"content-type", b"application/json")],
             "client": ("127.0.0.1", 1), "server": ("toy", 80)}
    try:
        asyncio.run(app(scope, receive, send))
        metrics = metrics_samples(TestClient(app).get("/metrics").text)
    finally:
        worker.close()
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 499
    assert 2 <= heartbeats[-1].yielded < 10, heartbeats[-1].yielded  # stopped at the next ""
    assert metrics['anyspec:request_aborted_total{model_name="toy",reason="disconnected"}'] == 1


@pytest.mark.parametrize("method", ["slem", "tokentiming", "tli", "slrs"])
def test_bytes_the_draft_cannot_spell_are_read_past(method):
    """The split-bytes target writes "é" as two byte tokens; the draft has no byte tokens.
    A prompt or an output holding half a character then has a byte the draft cannot spell:
    the draft reads on from after it, and the output is the target's own."""
    from toy_server import toy_models

    from anyspec.config import GeneratorConfig
    from anyspec.engine import SpeculativeGenerator
    from anyspec.sampling import SamplingParams

    target, draft = toy_models(split_bytes=True)
    gen = GeneratorConfig(method=method, draft_length="adaptive").build(target, draft)
    ar = SpeculativeGenerator(toy_models(split_bytes=True)[0])
    for prompt in ([7], [0, 7, 0], [6, 6, 0, 5], [0, 6]):
        assert gen.generate(prompt, 30).token_ids == ar.generate(prompt, 30).token_ids
        for seed in range(20):  # sampled outputs hold stray bytes too
            gen.generate(prompt, 30, SamplingParams(1.0, seed=seed))


def test_a_seed_gives_the_same_text_whatever_the_method_and_draft_length(client):
    """`seed` reproduces a sampled completion across methods and draft lengths, streamed or
    not: the text target-only decoding writes with that seed."""
    def text(speculative, stream=False):
        body = {"model": MODEL, "prompt": "ab c", "max_tokens": 24, "temperature": 1.0,
                "top_p": 0.95, "seed": 1234, "speculative": speculative, "stream": stream}
        r = client.post("/v1/completions", json=body)
        assert r.status_code == 200, r.text
        if stream:
            return "".join(c["choices"][0]["text"] for c in sse_json(r.text) if c["choices"])
        return r.json()["choices"][0]["text"]

    want = text({"method": "ar"})
    for method in ("slem", "tokentiming", "tli", "slrs"):
        for draft_length in (1, 4, "auto", "adaptive"):
            speculative = {"method": method, "draft_length": draft_length}
            assert text(speculative) == want, speculative
        assert text({"method": method}, stream=True) == want, method


def test_suffix_drafts_from_an_earlier_requests_output():
    """The server keeps one generator per setting, so suffix lookup matches what it wrote for
    earlier requests: asked again, it drafts from its first answer, in fewer passes."""
    body = {"model": MODEL, "max_tokens": 24, "temperature": 0,
            "speculative": {"method": "suffix", "draft_length": 8}}
    with toy_client() as c:
        first = c.post("/v1/completions", json={**body, "prompt": "ab c"}).json()
        again = c.post("/v1/completions", json={**body, "prompt": "ab c"}).json()
    assert again["choices"][0]["text"] == first["choices"][0]["text"]
    assert again["usage"]["speculative"]["steps"] < first["usage"]["speculative"]["steps"]
    assert again["usage"]["speculative"]["accepted_tokens"] > first["usage"]["speculative"]["accepted_tokens"]


def test_the_server_keeps_a_bounded_number_of_generators():
    """One generator per setting, the least recently used dropped past KEPT_GENERATORS."""
    from collections import OrderedDict

    from toy_server import toy_models

    from anyspec.config import GeneratorConfig

    target, draft = toy_models()
    cache = OrderedDict()
    first = worker_module.build_generator(target, draft, GeneratorConfig(draft_length=1), cache)
    for k in range(2, worker_module.KEPT_GENERATORS + 1):
        worker_module.build_generator(target, draft, GeneratorConfig(draft_length=k), cache)
    # used again, the first is now the most recent: the next new setting drops draft length 2
    assert worker_module.build_generator(target, draft, GeneratorConfig(draft_length=1), cache) is first
    worker_module.build_generator(target, draft, GeneratorConfig(draft_length=99), cache)
    assert len(cache) == worker_module.KEPT_GENERATORS
    assert GeneratorConfig(draft_length=1) in cache and GeneratorConfig(draft_length=2) not in cache
