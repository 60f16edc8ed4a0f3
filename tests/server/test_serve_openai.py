"""`anyspec serve` with the embedded pair (Gemma 3 270M drafted by SmolLM2 135M, method auto ->
hybrid), driven by the official openai client: completions, chat, streaming, usage
statistics, errors, metrics, a 16-request load from a second process, and a disconnect."""

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from openai import OpenAI
from serving import MODEL, start_server

pytestmark = pytest.mark.slow
MAX_TOKENS = 8
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("serve"), "--max-queue", "15", "--log-level", "warning")
    yield srv
    code = srv.stop()
    log = srv.log.read_text()
    assert "Traceback" not in log, log
    assert code in (0, -15), log  # uvicorn re-raises SIGTERM after a clean shutdown


@pytest.fixture(scope="module")
def client(server):
    return OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=300)


def complete(client, prompt, **kw):
    kw.setdefault("max_tokens", MAX_TOKENS)
    kw.setdefault("temperature", 0)
    return client.completions.create(model=MODEL, prompt=prompt, **kw)


def spec_of(usage) -> dict:
    return usage.model_extra["speculative"]


def test_models_and_health(server, client):
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL]
    assert models[0].model_extra["default_method"] == "hybrid"
    assert client.models.retrieve(MODEL).id == MODEL
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}


def test_completion_is_lossless_and_reports_speculative_usage(client):
    prompt = "The capital of France is"
    spec = complete(client, prompt)
    plain = complete(client, prompt, extra_body={"speculative": {"method": "ar"}})
    fixed = complete(client, prompt, extra_body={"speculative": {"method": "tli", "draft_length": 3}})
    text = spec.choices[0].text
    assert text and text == plain.choices[0].text == fixed.choices[0].text  # greedy: identical
    assert spec.object == "text_completion" and spec.model == MODEL

    u, s = spec.usage, spec_of(spec.usage)
    assert u.completion_tokens <= MAX_TOKENS and u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert (s["method"], s["draft_length"]) == ("hybrid", "auto")
    assert 1 <= s["steps"] <= u.completion_tokens and 0 <= s["accepted_tokens"] <= s["draft_tokens"]
    assert s["mean_acceptance_length"] == pytest.approx(1 + s["accepted_tokens"] / s["steps"])
    assert s["acceptance_rate"] == pytest.approx(s["accepted_tokens"] / max(1, s["draft_tokens"]))
    assert sum(s["accepted_tokens_per_position"]) == s["accepted_tokens"]

    p = spec_of(plain.usage)
    assert (p["method"], p["draft_tokens"], p["mean_acceptance_length"]) == ("ar", 0, 1.0)
    assert p["steps"] == plain.usage.completion_tokens  # one token per target pass
    f = spec_of(fixed.usage)
    assert f["method"] == "tli" and f["draft_length"] == 3
    assert len(f["accepted_tokens_per_position"]) <= 3  # never more than 3 drafted per step


def test_chat_uses_the_plain_template(client):
    messages = [{"role": "system", "content": "You answer briefly."},
                {"role": "user", "content": "Name a colour."}]
    chat = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=MAX_TOKENS,
                                          temperature=0)
    rendered = "System: You answer briefly.\n\nUser: Name a colour.\n\nAssistant:"
    same = complete(client, rendered, stop=["\nUser:"])
    choice = chat.choices[0]
    assert chat.object == "chat.completion" and choice.message.role == "assistant"
    assert choice.message.content == same.choices[0].text and choice.finish_reason == same.choices[0].finish_reason
    assert chat.usage.prompt_tokens == same.usage.prompt_tokens
    assert spec_of(chat.usage)["steps"] >= 1


def test_streaming_completion_matches_and_ends_with_usage(client):
    prompt = "Water boils at"
    whole = complete(client, prompt)
    chunks = list(complete(client, prompt, stream=True, stream_options={"include_usage": True}))
    texts = [c.choices[0].text for c in chunks if c.choices]
    assert len(texts) >= 2 and "".join(texts) == whole.choices[0].text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    last = chunks[-1]
    assert last.choices == [] and last.usage.completion_tokens == whole.usage.completion_tokens
    s = spec_of(last.usage)  # the draft lengths depend on timings: only the text is fixed
    assert s["method"] == "hybrid" and s["steps"] >= 1
    assert s["mean_acceptance_length"] == pytest.approx(1 + s["accepted_tokens"] / s["steps"])
    for options in (None, {"include_usage": False}):  # a usage chunk only when asked, as OpenAI
        no_usage = list(complete(client, prompt, stream=True, stream_options=options))
        assert all(c.usage is None and c.choices for c in no_usage)


def test_streaming_chat(client):
    chunks = list(client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Say hello."}], max_tokens=MAX_TOKENS,
        temperature=0, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content and chunks[-2].choices[0].finish_reason in ("stop", "length")
    assert chunks[-1].usage.completion_tokens >= 1 and spec_of(chunks[-1].usage)["steps"] >= 1


def test_n_seed_and_stop(client):
    # a fixed draft length: auto's choices follow measured times, and which tokens are drafted
    # changes which random numbers a sampled round draws
    kw = dict(max_tokens=6, temperature=1.0, top_p=0.9, seed=3, n=2,
              extra_body={"speculative": {"draft_length": 4}})
    first, again = complete(client, "Once upon a time", **kw), complete(client, "Once upon a time", **kw)
    assert [c.index for c in first.choices] == [0, 1]
    assert [c.text for c in first.choices] == [c.text for c in again.choices]  # a seed reproduces
    assert first.usage.completion_tokens <= 12 and spec_of(first.usage)["steps"] >= 2

    counting = complete(client, "1, 2, 3, 4,", max_tokens=12)
    assert counting.choices[0].text.startswith(" 5, 6")
    stopped = complete(client, "1, 2, 3, 4,", max_tokens=12, stop=[" 7"])
    assert stopped.choices[0].text == counting.choices[0].text.split(" 7")[0]
    assert stopped.choices[0].finish_reason == "stop"


def test_bad_requests_get_openai_errors_naming_the_field(server, client):
    def status_and_param(call):
        with pytest.raises(openai.APIStatusError) as info:
            call()
        error = info.value.body
        assert set(error) == {"message", "type", "param", "code"} and error["message"], error
        return info.value.status_code, error["param"]

    assert status_and_param(lambda: complete(client, "x", max_tokens=-5)) == (400, "max_tokens")
    assert status_and_param(lambda: complete(client, "x", max_tokens=10**9)) == (400, "max_tokens")
    assert status_and_param(lambda: complete(client, "x", temperature="hot")) == (400, "temperature")
    assert status_and_param(lambda: client.completions.create(model="gpt-4", prompt="x")) == (404, "model")
    assert status_and_param(lambda: complete(client, "x", logprobs=2)) == (400, "logprobs")
    assert status_and_param(lambda: complete(client, "x", extra_body={"repetition_penalty": 1.2})) == \
        (400, "repetition_penalty")
    assert status_and_param(lambda: complete(client, "x", extra_body={"speculative": {"method": "sd"}})) == \
        (400, "speculative.method")  # the pair's vocabularies differ
    assert status_and_param(lambda: client.chat.completions.create(model=MODEL, messages=[])) == \
        (400, "messages")
    assert status_and_param(lambda: client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}])) \
        == (400, "messages[0].content[0]")
    long_prompt = "word " * 5000  # about 5000 tokens, over the 4096 context
    assert status_and_param(lambda: complete(client, long_prompt)) == (400, "prompt")
    assert status_and_param(lambda: complete(client, "word " * 4000, max_tokens=500)) == (400, "max_tokens")

    raw = httpx.Client(base_url=server.url, timeout=60)
    for body, status in ((b"{not json", 400), (b"[]", 400), (b'{"model": "' + b"x" * (2 << 20) + b'"}', 413)):
        r = raw.post("/v1/completions", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status and r.json()["error"]["type"] == "invalid_request_error", r.text
    r = raw.get("/v1/nothing")
    assert r.status_code == 404 and "error" in r.json()
    assert httpx.get(server.url + "/health").status_code == 200  # still serving


def test_metrics_count_what_usage_reports(server, client):
    before = server.metrics()
    r = complete(client, "My favourite food is", max_tokens=10)
    after = server.metrics()
    s = spec_of(r.usage)

    def delta(name):
        return after.get(name, 0) - before.get(name, 0)

    drafts = delta("anyspec:spec_decode_num_drafts_total")  # steps that drafted >= 1 token
    assert drafts <= s["steps"] and (drafts >= 1) == (s["draft_tokens"] >= 1)
    assert delta("anyspec:spec_decode_num_draft_tokens_total") == s["draft_tokens"]
    assert delta("anyspec:spec_decode_num_accepted_tokens_total") == s["accepted_tokens"]
    for pos, n in enumerate(s["accepted_tokens_per_position"]):
        assert delta(f'anyspec:spec_decode_num_accepted_tokens_per_pos_total{{position="{pos}"}}') == n
    assert delta("anyspec:generation_tokens_total") == r.usage.completion_tokens
    assert delta("anyspec:prompt_tokens_total") == r.usage.prompt_tokens
    assert delta("anyspec:e2e_request_latency_seconds_count") == 1
    assert delta('anyspec:http_requests_total{endpoint="/v1/completions",status="200"}') == 1
    assert delta(f'anyspec:request_success_total{{finished_reason="{r.choices[0].finish_reason}"}}') == 1
    assert after["anyspec:num_requests_running"] == 0 and after["anyspec:num_requests_waiting"] == 0
    assert after["anyspec:queue_capacity"] == 15


def test_sixteen_concurrent_streams_from_another_process(server, client):
    prompts = ["The sky is", "Dogs are", "A good breakfast", "In 1969,"]
    sequential = {p: complete(client, p).choices[0].text for p in prompts}

    peak = {"waiting": 0}
    done = threading.Event()

    def watch_queue():  # the queue depth gauge, seen from outside while the load runs
        while not done.is_set():
            peak["waiting"] = max(peak["waiting"], server.metrics()["anyspec:num_requests_waiting"])
            time.sleep(0.2)

    watcher = threading.Thread(target=watch_queue)
    watcher.start()
    try:
        run = subprocess.run([sys.executable, str(HERE / "load_client.py"), server.base_url, MODEL,
                              str(MAX_TOKENS), *(prompts * 4)], capture_output=True, text=True, timeout=600)
    finally:
        done.set()
        watcher.join()
    assert run.returncode == 0, run.stderr
    outcomes = json.loads(run.stdout)
    assert len(outcomes) == 16 and all(o["status"] == 200 for o in outcomes), outcomes
    for o in outcomes:
        assert o["text"] == sequential[o["prompt"]], o  # greedy: the same as one at a time
        assert o["usage"]["speculative"]["steps"] >= 1
    assert peak["waiting"] >= 2  # they really queued


def test_disconnect_frees_the_engine(server, client):
    before = server.metrics().get('anyspec:request_aborted_total{reason="disconnected"}', 0)
    started = time.monotonic()
    # greedy counting goes on for thousands of tokens: minutes if the server kept generating
    stream = complete(client, "1, 2, 3, 4, 5, 6, 7, 8,", max_tokens=3000, stream=True)
    for i, _ in enumerate(stream):
        if i == 2:
            break
    stream.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        m = server.metrics()
        if m.get('anyspec:request_aborted_total{reason="disconnected"}', 0) == before + 1 \
                and m["anyspec:num_requests_running"] == 0:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the server did not notice the disconnect and free the engine")
    assert complete(client, "Hello", max_tokens=4).choices[0].text  # the engine serves again
    assert time.monotonic() - started < 90
