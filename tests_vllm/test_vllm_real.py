"""anyspec's proposers inside vLLM, on the embedded pair (Gemma 3 270M converted for vLLM,
SmolLM2 135M draft): greedy ids equal vLLM's without speculation, sampled first tokens
distributed as vLLM's without speculation, and no per-request state left behind.

Outside tests/ because they need vLLM, which pins its own torch and transformers:
`bash scripts/test-vllm.sh` makes vLLM's virtual environment and runs them there."""

from __future__ import annotations

import collections
import os

import pytest
import vllm

PROMPTS = ["The capital of France is", "def fibonacci(n):\n",
           "Water boils at", "The three primary colors are"]
COUNTING = "1, 2, 3, 4, 5, 6, 7, 8,"  # predictable: most drafts are accepted, some rejected


@pytest.fixture(scope="module")
def target():
    from anyspec.models.hf import hf_directory

    return str(hf_directory("gemma-3-270m"))


def make_llm(target: str, proposer: str | None):
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("VLLM_ALLOW_INSECURE_SERIALIZATION", "1")  # collective_rpc(callable)
    spec = None if proposer is None else {
        "method": "custom_class", "model": f"anyspec.integrations.vllm.{proposer}",
        "num_speculative_tokens": 4}
    return vllm.LLM(model=target, speculative_config=spec, dtype="bfloat16", max_model_len=1024,
                    enforce_eager=True, seed=0, max_num_seqs=64, disable_log_stats=False)


@pytest.fixture(scope="module")
def plain(target):
    llm = make_llm(target, None)
    yield llm
    llm.llm_engine.engine_core.shutdown()  # its processes go now, not at exit


@pytest.fixture(scope="module", params=["TokenTiming", "SLEM"])
def speculative(request, target):
    llm = make_llm(target, request.param)
    yield llm
    llm.llm_engine.engine_core.shutdown()


def greedy(llm, prompts, max_tokens=40):
    params = vllm.SamplingParams(temperature=0, max_tokens=max_tokens)
    return [list(o.outputs[0].token_ids) for o in llm.generate(prompts, params, use_tqdm=False)]


def accepted_tokens(llm) -> float:
    return sum(getattr(m, "value", 0) for m in llm.get_metrics()
               if m.name == "vllm:spec_decode_num_accepted_tokens")


@pytest.mark.parametrize("batch", [1, 4])
def test_greedy_ids_equal_vllm_without_speculation(plain, speculative, batch):
    prompts = PROMPTS[:batch]
    before = accepted_tokens(speculative)
    assert greedy(speculative, prompts) == greedy(plain, prompts)
    assert accepted_tokens(speculative) > before  # the drafts were used, not all rejected


def first_tokens(llm, temperature, n, seed):
    params = [vllm.SamplingParams(temperature=temperature, max_tokens=4, seed=seed + i)
              for i in range(n)]
    outs = llm.generate([COUNTING] * n, params, use_tqdm=False)
    return collections.Counter(tuple(o.outputs[0].token_ids[:4]) for o in outs)


@pytest.mark.parametrize("speculative", ["TokenTiming"], indirect=True)
@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_sampled_first_tokens_distributed_as_vllm_without_speculation(plain, speculative,
                                                                      temperature):
    """Four tokens per sample: the first comes from the prompt pass, the next three from
    verified drafts. A chi-square test of homogeneity over the 4-token strings (rare ones
    pooled); with the CPU sampling kernel unfixed, temperatures are garbage and this fails.
    tokentiming only: slem proposes through the same code, less the DTW cut."""
    from scipy.stats import chi2_contingency

    n = 300
    a = first_tokens(plain, temperature, n, seed=1)
    b = first_tokens(speculative, temperature, n, seed=100_000)
    common = [s for s in set(a) | set(b) if a[s] + b[s] >= 10]
    table = [[a[s] for s in common] + [n - sum(a[s] for s in common)],
             [b[s] for s in common] + [n - sum(b[s] for s in common)]]
    if table[0][-1] + table[1][-1] == 0:
        table = [row[:-1] for row in table]
    assert len(table[0]) >= 2, "the prompt should leave the sampler some choice"
    assert chi2_contingency(table).pvalue > 1e-3


def test_request_churn_leaves_no_state(speculative):
    """Short requests, some aborted midway: afterwards the proposer holds state only for
    requests vLLM itself still holds, and its draft cache only for those."""
    engine = speculative.llm_engine
    params = vllm.SamplingParams(temperature=0.8, max_tokens=24, seed=3)
    for i in range(12):
        engine.add_request(f"churn-{i}", PROMPTS[i % len(PROMPTS)], params)
    for _ in range(4):
        engine.step()
    engine.abort_request([f"churn-{i}" for i in range(0, 12, 3)])
    while engine.has_unfinished_requests():
        engine.step()
    greedy(speculative, PROMPTS[:1], max_tokens=8)  # one more step, where vLLM frees the rest

    def state(worker):
        runner = worker.model_runner
        drafter = runner.drafter
        return (sorted(drafter.requests), sorted(runner.requests),
                sorted(drafter.draft.cached), len(drafter._free) + len(drafter.requests),
                drafter.draft.n_seq)

    for ours, theirs, cached, slots, n_seq in speculative.collective_rpc(state):
        assert set(ours) <= set(theirs)
        assert len(cached) <= len(ours)
        assert slots == n_seq  # every sequence is either free or held by a live request


def test_openai_server_with_the_plugin_answers_as_vllm_without_speculation(target, plain,
                                                                           tmp_path):
    """vLLM's OpenAI server with the `Proposer` class configured by ANYSPEC_METHOD: greedy
    text equals the offline engine's without speculation, streamed or not, and drafts were
    accepted (its Prometheus counters)."""
    import socket
    import subprocess
    import sys
    import time

    import httpx
    from openai import OpenAI

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    spec = ('{"method": "custom_class", "model": "anyspec.integrations.vllm.Proposer", '
            '"num_speculative_tokens": 4}')
    # `vllm serve` looks up the distribution "vllm", which vllm-cpu is not: the module runs
    # the same server
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", target,
           "--served-model-name", "gemma", "--dtype", "bfloat16", "--max-model-len", "1024",
           "--enforce-eager", "--host", "127.0.0.1", "--port", str(port),
           "--speculative-config", spec]
    env = {**os.environ, "ANYSPEC_METHOD": "slem", "VLLM_CPU_KVCACHE_SPACE": "1"}
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(2)
        client = OpenAI(base_url=f"{base}/v1", api_key="none")
        prompt = PROMPTS[1]
        text = client.completions.create(model="gemma", prompt=prompt, max_tokens=40,
                                         temperature=0).choices[0].text
        streamed = "".join(chunk.choices[0].text for chunk in client.completions.create(
            model="gemma", prompt=prompt, max_tokens=40, temperature=0, stream=True))
        offline = plain.generate([prompt], vllm.SamplingParams(temperature=0, max_tokens=40),
                                 use_tqdm=False)[0].outputs[0].text
        assert text == streamed == offline
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        accepted = [line for line in metrics.splitlines()
                    if line.startswith("vllm:spec_decode_num_accepted_tokens_total")]
        assert accepted and float(accepted[0].split()[-1]) > 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
