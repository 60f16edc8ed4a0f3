"""Per-round overhead of a method at two commits, interleaved question by question.

    python benchmarks/ab_overhead.py --base HEAD~1 [--method slem] [--repeats 2] [--temperature 1]
                                     [--questions 13] [--target-backend hf] [--draft-length auto]

Machine speed drifts by 20% and more between runs here, so two `anyspec bench` runs a few
minutes apart cannot tell a 0.1 ms change in overhead. This checks the base commit out into a
temporary worktree and runs one worker process per side (the working tree and the base), each
with the models loaded once (the draft on llama.cpp, the target on --target-backend). The
workers take turns on the same Spec-Bench questions (one per category, 64 tokens, k = 4 unless
--draft-length says otherwise, greedy unless --temperature says otherwise, with the
question's index as the seed), the order alternating, so drift hits both alike. Prints each
side's median and mean overhead per round, its draft passes' time per round, its speed after
prefill, and whether their outputs agree (sampled outputs can differ where the two sides
compute the distributions differently in the last bits).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from anyspec.cli import configure_process

REPO = Path(__file__).resolve().parent.parent

WORKER = """
import json, sys
from anyspec.bench.data import read_questions, select_questions
from anyspec.engine import SpeculativeGenerator
from anyspec.models.registry import load_model
from anyspec.sampling import SamplingParams
method, temperature, backend, k = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
k = int(k) if k.isdigit() else k
target = load_model("gemma-3-270m", backend)
draft = load_model("smollm2-135m-instruct", "llamacpp", draft=True)
try:
    from anyspec.config import GeneratorConfig
    gen = GeneratorConfig(method=method, draft_length=k).build(target, draft)
except ImportError:  # a base commit from before GeneratorConfig
    from anyspec.control import draft_stop_below
    from anyspec.proposers import make_proposer, resolve_method
    method = resolve_method(method, target, draft)
    stop = draft_stop_below(None, k, method)
    gen = SpeculativeGenerator(target, make_proposer(method, target, draft, stop), k)
questions = select_questions(read_questions(), per_category=1)
print(len(questions), flush=True)
for line in sys.stdin:
    q = questions[int(line)]
    target.reset()
    draft.reset()
    sampling = SamplingParams(temperature=temperature, seed=int(line))
    result = gen.generate(target.tokenizer.encode(q.turns[0]), 64, sampling)
    s = result.stats
    print(json.dumps({"overhead_ms": s.overhead_ms, "text": result.text, "rounds": s.rounds,
                      "draft_s": s.draft_seconds, "new_tokens": s.new_tokens,
                      "decode_s": s.total_seconds - s.prefill_seconds,
                      "total_s": s.total_seconds}), flush=True)
"""


def start_worker(src: Path, args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(src))  # ahead of the editable install
    argv = [args.method, str(args.temperature), args.target_backend, str(args.draft_length)]
    return subprocess.Popen([sys.executable, "-c", WORKER, *argv], env=env,
                            text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE)  # stderr shows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", default="HEAD~1", help="the commit to compare the working tree with")
    ap.add_argument("--method", default="tokentiming")
    ap.add_argument("--repeats", type=int, default=2, help="passes over the questions")
    ap.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    ap.add_argument("--target-backend", default="llamacpp", choices=["llamacpp", "hf"],
                    help="the target's backend (the draft runs on llama.cpp)")
    ap.add_argument("--draft-length", default="4", help="k, or auto or adaptive (default 4)")
    ap.add_argument("--questions", type=int, default=13,
                    help="the first N of the questions (one per category, 13 in all)")
    args = ap.parse_args()
    configure_process()  # the OpenMP spin count `anyspec` runs with, before a model loads
    if args.temperature < 0 or args.repeats < 1 or args.questions < 1:  # else a traceback
        ap.error("--temperature must be >= 0, --repeats and --questions >= 1")
    # a SIGTERM (timeout, kill) still removes the temporary worktree and stops the workers
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    with tempfile.TemporaryDirectory() as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach",
                        str(base_tree), args.base], check=True)
        workers: dict[str, subprocess.Popen] = {}
        try:
            workers = {"base": start_worker(base_tree / "src", args),
                       "working tree": start_worker(REPO / "src", args)}
            n = min({int(w.stdout.readline()) for w in workers.values()}.pop(), args.questions)
            overhead = {side: [] for side in workers}
            totals = {side: dict(rounds=0, draft_s=0.0, new_tokens=0, decode_s=0.0, total_s=0.0)
                      for side in workers}
            agree = True
            for rep in range(args.repeats):
                for i in range(n):
                    texts = set()
                    sides = list(workers) if (i + rep) % 2 == 0 else list(reversed(workers))
                    for side in sides:
                        workers[side].stdin.write(f"{i}\n")
                        workers[side].stdin.flush()
                        reply = json.loads(workers[side].stdout.readline())
                        overhead[side] += reply["overhead_ms"]
                        for key in totals[side]:
                            totals[side][key] += reply[key]
                        texts.add(reply["text"])
                    agree = agree and len(texts) == 1
            for w in workers.values():
                w.stdin.close()
                w.wait()
        finally:
            for w in workers.values():
                if w.poll() is None:
                    w.kill()
                    w.wait()
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force",
                            str(base_tree)], check=False)
    print(f"{args.method}, {args.target_backend} target, k {args.draft_length}, temperature "
          f"{args.temperature:g}, {args.repeats} x {n} questions, overhead per round (ms):")
    speeds = {}
    for side, values in overhead.items():
        t = totals[side]
        draft_ms, speed = 1e3 * t["draft_s"] / max(t["rounds"], 1), t["new_tokens"] / t["decode_s"]
        speeds[side] = t["new_tokens"] / t["total_s"]
        print(f"  {side:13s} {len(values)} rounds, median {statistics.median(values):.2f}, "
              f"mean {statistics.mean(values):.2f}; draft passes {draft_ms:.1f} ms per round; "
              f"{speed:.1f} tok/s after prefill, {speeds[side]:.1f} end to end")
    print(f"end to end, working tree / base: {speeds['working tree'] / speeds['base']:.3f}")
    print("outputs agree" if agree else "OUTPUTS DIFFER")


if __name__ == "__main__":
    main()
