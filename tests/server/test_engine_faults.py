"""A generation that fails inside the engine: 500 with an OpenAI error body (an error event
when streaming), and the server keeps serving. The app runs in-process over the real
embedded models; the fault is injected into the proposer the server builds."""

import json

import pytest
from fastapi.testclient import TestClient
from serving import metrics_samples

from anyspec.config import GeneratorConfig
from anyspec.server import worker as worker_module
from anyspec.server.app import ServerConfig, create_app
from anyspec.server.worker import Worker

pytestmark = pytest.mark.slow
BODY = {"model": "gemma-3-270m", "prompt": "The capital of France is", "max_tokens": 6, "temperature": 0}


@pytest.fixture(scope="module")
def client(gemma_llamacpp, smollm_llamacpp):
    worker = Worker(gemma_llamacpp, smollm_llamacpp, GeneratorConfig(method="tli"), max_queue=4)
    app = create_app(worker, ServerConfig(model_name="gemma-3-270m", warm_up=False))
    with TestClient(app) as c:  # runs the lifespan: startup, then shutdown at the end
        yield c


def failing_build_generator(real, monkeypatch):
    """The server's generators fail in their second round; undone with monkeypatch (the
    server keeps its generators from one request to the next)."""
    def build(*args, **kwargs):
        gen = real(*args, **kwargs)
        propose, calls = gen.proposer.propose, []

        def propose_then_fail(*a, **kw):
            calls.append(1)
            if len(calls) == 2:  # the second round: after the first text went out
                raise RuntimeError("injected fault")
            return propose(*a, **kw)

        monkeypatch.setattr(gen.proposer, "propose", propose_then_fail)
        return gen

    return build


def test_engine_failure_is_a_500_and_the_server_keeps_serving(client, monkeypatch):
    good = client.post("/v1/completions", json=BODY)
    assert good.status_code == 200
    expected = good.json()["choices"][0]["text"]

    monkeypatch.setattr(worker_module, "build_generator", failing_build_generator(worker_module.build_generator, monkeypatch))
    r = client.post("/v1/completions", json=BODY)
    assert r.status_code == 500
    error = r.json()["error"]
    assert error["type"] == "server_error" and "injected fault" in error["message"]
    assert set(error) == {"message", "type", "param", "code"}

    with client.stream("POST", "/v1/completions", json={**BODY, "stream": True}) as r:
        assert r.status_code == 200  # the status line went out before the failure
        events = [line[len("data: "):] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    assert json.loads(events[-2])["error"]["type"] == "server_error"
    assert "injected fault" in json.loads(events[-2])["error"]["message"]
    monkeypatch.undo()

    again = client.post("/v1/completions", json=BODY)
    assert again.status_code == 200 and again.json()["choices"][0]["text"] == expected
    metrics = metrics_samples(client.get("/metrics").text)
    assert metrics['anyspec:request_aborted_total{model_name="gemma-3-270m",reason="error"}'] == 2
    assert metrics['anyspec:num_requests_running{model_name="gemma-3-270m"}'] == 0


def test_context_overflow_inside_the_engine_is_a_400(client, monkeypatch):
    from anyspec.errors import ContextOverflowError

    def overflow(*args, **kwargs):
        raise ContextOverflowError("the draft's context is full")

    monkeypatch.setattr(worker_module, "build_generator", overflow)
    r = client.post("/v1/completions", json=BODY)
    assert r.status_code == 400 and r.json()["error"]["code"] == "context_length_exceeded"
