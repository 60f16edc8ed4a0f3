"""`anyspec serve` at its limits, configured through environment variables: a queue of one
(429 with Retry-After past it), an API key, and a graceful shutdown with requests in flight."""

import json
import os
import signal
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
KEY = "test-key"
HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"ANYSPEC_MAX_QUEUE": "1", "ANYSPEC_API_KEY": KEY, "ANYSPEC_SHUTDOWN_TIMEOUT": "4",
           "ANYSPEC_METHOD": "tli", "ANYSPEC_LOG_LEVEL": "warning"}
    srv = start_server(tmp_path_factory.mktemp("serve"), env=env)
    yield srv
    srv.stop()


def test_api_key(server):
    with pytest.raises(openai.AuthenticationError) as info:
        OpenAI(base_url=server.base_url, api_key="wrong", max_retries=0).models.list()
    assert info.value.body["code"] == "invalid_api_key"
    models = OpenAI(base_url=server.base_url, api_key=KEY).models.list().data
    assert models[0].model_extra["default_method"] == "tli"  # ANYSPEC_METHOD was read
    assert httpx.get(server.url + "/metrics").status_code == 200  # no key needed to scrape


def test_past_the_queue_bound_429_with_retry_after(server):
    run = subprocess.run([sys.executable, str(HERE / "load_client.py"), server.base_url, MODEL, "6",
                          *["The weather today"] * 6], capture_output=True, text=True, timeout=600,
                         env={**os.environ, "OPENAI_API_KEY": KEY})
    assert run.returncode == 0, run.stderr
    outcomes = json.loads(run.stdout)
    served = [o for o in outcomes if o["status"] == 200]
    refused = [o for o in outcomes if o["status"] == 429]
    assert len(served) + len(refused) == 6
    assert 2 <= len(served) < 6 and refused  # one running + one waiting fit; the rest do not
    assert all(int(o["retry_after"]) >= 1 for o in refused)
    assert len({o["text"] for o in served}) == 1 and served[0]["text"]  # greedy, same prompt
    assert server.metrics()['anyspec:http_requests_total{endpoint="/v1/completions",status="429"}'] == len(refused)


def test_graceful_shutdown_finishes_then_stops_in_flight_work(server):
    client = OpenAI(base_url=server.base_url, api_key=KEY, max_retries=0, timeout=120)
    results = {}

    def short():
        chunks = list(client.completions.create(model=MODEL, prompt="The sun is", max_tokens=6,
                                                temperature=0, stream=True,
                                                stream_options={"include_usage": True}))
        results["short"] = chunks

    def long():
        try:
            for _ in client.completions.create(model=MODEL, prompt="1, 2, 3, 4, 5,", max_tokens=3000,
                                               temperature=0, stream=True):
                pass
            results["long"] = "finished"
        except openai.APIError as e:
            results["long"] = e

    first = threading.Thread(target=short)
    first.start()
    while server.metrics()["anyspec:num_requests_running"] == 0:  # the short one holds the engine
        time.sleep(0.1)
    second = threading.Thread(target=long)
    second.start()
    while server.metrics()["anyspec:num_requests_waiting"] == 0:  # the long one waits behind it
        time.sleep(0.1)
    server.process.send_signal(signal.SIGTERM)
    stopped_at = time.monotonic()
    first.join(60)
    second.join(60)
    code = server.process.wait(60)
    took = time.monotonic() - stopped_at
    log = server.log.read_text()

    assert results["short"][-1].usage.completion_tokens >= 1  # admitted before: it finished
    assert isinstance(results["long"], openai.APIError), results["long"]  # stopped at the deadline
    assert "shutting down" in str(results["long"])
    assert took < 40, took  # 4 s deadline, not the minutes 3000 tokens take
    assert code in (0, -signal.SIGTERM) and "Traceback" not in log, log
