"""What one greedy draft step's own work costs, right after a forward pass, and why numpy.

    python benchmarks/step_costs.py [--repeats 80]

Each line is timed right after a fresh SmolLM2 pass on llama.cpp (caches cold), median of
`repeats`, except the warm lines, which repeat the call on a row it has just touched:
- the step as `draft_chain` does it: mask the end tokens, argmax, check the top is finite;
  and as it did before commit 6a20c5f (numpy wrappers, fancy indexing, the shift by the top);
- the same plus `top_probability` (the confidence `tokentiming` reads): as it is now, on
  ggml's vectorised exp (fast_exp.py); with numpy's exp, as before commit 0a8c6ea; and with
  torch's exp (whole, and in chunks below its parallel grain, so no thread wakes);
- the exp and sum over a row of real logits, warm: numpy's and ggml's (`fast_exp.exp_sum`);
- copying a Gemma 3 logits row (262k) out of llama.cpp's buffer right after its pass, as the
  backend has just done (so the row is as warm as the backend leaves it).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np
import torch

from anyspec.fast_exp import exp_sum
from anyspec.models.registry import load_model
from anyspec.proposers.draft_chain import top_probability

TEXT = "The results of the experiment were clear, and the"


def greedy_step(row: np.ndarray, banned: list[int]) -> int:
    for b in banned:
        row[b] = -math.inf
    token = int(row.argmax())
    assert math.isfinite(float(row[token]))
    return token


def old_greedy_step(row: np.ndarray, banned: np.ndarray) -> int:
    """The step before commit 6a20c5f: fancy-index mask, np.argmax, np.isfinite."""
    row[banned] = -np.inf
    token = int(np.argmax(row))
    assert np.isfinite(row[token])
    return token


def old_top_probability(row: np.ndarray, token: int) -> float:
    row -= row[token]
    np.exp(row, out=row)
    return 1.0 / float(row.sum())


def numpy_top_probability(row: np.ndarray, token: int) -> float:
    """top_probability before commit 0a8c6ea: numpy's exp, unshifted where |max| < 60."""
    top = float(row[token])
    if abs(top) >= 60.0:
        row -= top
    np.exp(row, out=row)
    return float(row[token]) / float(row.sum())


def numpy_exp_sum(row: np.ndarray, shift: float) -> float:
    row -= np.float32(shift)
    np.exp(row, out=row)
    return float(row.sum(dtype=np.float64))


def torch_top_probability(row: np.ndarray, token: int) -> float:
    t = torch.from_numpy(row)
    t.exp_()
    return float(t[token]) / float(t.sum())


def torch_serial_top_probability(row: np.ndarray, token: int) -> float:
    """torch's vectorised exp in chunks below its parallel grain (32768), so no OpenMP
    thread is woken; the sum by numpy, which never threads."""
    t = torch.from_numpy(row)
    t[:24576].exp_()
    t[24576:].exp_()
    return float(row[token]) / float(row.sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=80)
    args = ap.parse_args()

    draft = load_model("smollm2-135m-instruct", "llamacpp", draft=True)
    target = load_model("gemma-3-270m", "llamacpp")
    banned = sorted(draft.tokenizer.eos_ids)
    old_banned = np.array(banned)
    steps = {
        "before 6a20c5f: mask, argmax, finite check": lambda row: old_greedy_step(row, old_banned),
        "before 6a20c5f: the same + the shifted softmax":
            lambda row: old_top_probability(row, old_greedy_step(row, old_banned)),
        "mask, argmax, finite check": lambda row: greedy_step(row, banned),
        "the same + top_probability (ggml's exp)":
            lambda row: top_probability(row, greedy_step(row, banned)),
        "the same + numpy's exp (before 0a8c6ea)":
            lambda row: numpy_top_probability(row, greedy_step(row, banned)),
        "the same + torch exp_ and sum":
            lambda row: torch_top_probability(row, greedy_step(row, banned)),
        "the same + torch exp_ in chunks below its parallel grain":
            lambda row: torch_serial_top_probability(row, greedy_step(row, banned)),
    }
    seconds = {name: [] for name in steps}
    warm_exp, warm_ggml, copies = [], [], []
    draft_ids, target_ids = draft.tokenizer.encode(TEXT), target.tokenizer.encode(TEXT)
    for rep in range(args.repeats):
        for name, step in steps.items():
            row = draft.logits(draft_ids + [100 + rep % 50], n_last=1)[0]  # a real pass
            began = time.perf_counter()
            step(row)
            seconds[name].append(time.perf_counter() - began)
        # the backend has just copied the row out; time the same copy again
        target.logits(target_ids + [100 + rep % 50], n_last=1)
        began = time.perf_counter()
        ptr = target._llama_cpp.llama_get_logits_ith(target._ctx, -1)
        np.array(np.ctypeslib.as_array(ptr, shape=(target.vocab_size,)), dtype=np.float32)
        copies.append(time.perf_counter() - began)
        row = draft.logits(draft_ids + [100 + rep % 50], n_last=1)[0]
        shift = float(row.max())
        for work, values in ((numpy_exp_sum, warm_exp), (exp_sum, warm_ggml)):
            work(row.copy(), shift)  # touch the code and the row once
            fresh = row.copy()
            began = time.perf_counter()
            work(fresh, shift)
            values.append(time.perf_counter() - began)

    def us(values: list[float]) -> str:
        return f"{1e6 * statistics.median(values):.0f} us"

    print("| work | median |\n|---|---|")
    for name, values in seconds.items():
        print(f"| {name}, after a SmolLM2 pass | {us(values)} |")
    print(f"| numpy's exp and sum over {draft.vocab_size} logits, warm | {us(warm_exp)} |")
    print(f"| ggml's exp and sum over {draft.vocab_size} logits, warm | {us(warm_ggml)} |")
    print(f"| copy one Gemma logits row out of llama.cpp, right after its pass | {us(copies)} |")

if __name__ == "__main__":
    main()
