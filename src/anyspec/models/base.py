"""The one small interface every backend implements, and the cache bookkeeping they share.

A backend only knows how to run new tokens at given positions and drop cache entries past a
length. `LanguageModel.logits` turns that into "logits after these ids": it keeps the ids that
are in the cache, reuses their longest common prefix with the request and rolls back the rest,
so callers never do cache arithmetic (the source of several bugs in other implementations).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import AnyspecError, ContextOverflowError
from ..trees import depths, main_path_length


class Tokenizer(ABC):
    """Text <-> ids, plus the exact bytes each token stands for.

    Decoding is done from token bytes so that every backend decodes the same way, a token
    holding part of a multi-byte UTF-8 character stays bytes, and the text of a suffix of ids
    is exactly the bytes it adds (no leading-space stripping).
    """

    vocab_size: int
    bos_id: int | None
    eos_ids: frozenset[int]  # every end-of-generation token (eos, end_of_turn, ...)
    chat_template: str | None = None
    _bytes_table: list[bytes] | None = None

    @abstractmethod
    def encode(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        """Ids for `text`; add_special adds the model's BOS when the model wants one.

        parse_special: control-token text ("<start_of_turn>", "<|im_start|>") becomes the
        control token, as a chat template means it; by default it stays plain text, so that
        user or model text can never forge a turn marker.
        """

    @abstractmethod
    def _token_bytes(self, token: int) -> bytes:
        """The bytes `token` contributes to the text; b"" for control tokens."""

    def token_bytes(self, token: int) -> bytes:
        return self.bytes_table()[token]

    def bytes_table(self) -> list[bytes]:
        if self._bytes_table is None:
            self._bytes_table = [self._token_bytes(i) for i in range(self.vocab_size)]
        return self._bytes_table

    def decode_bytes(self, ids: Sequence[int]) -> bytes:
        table = self.bytes_table()
        return b"".join(table[i] for i in ids)

    def decode(self, ids: Sequence[int]) -> str:
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


@dataclass
class ForwardCounter:
    """Time spent in forward passes; read and reset by the engine each round."""

    calls: int = 0
    tokens: int = 0
    seconds: float = 0.0


class ForwardCosts:
    """Measured seconds of one forward pass by number of new tokens, for the draft-length
    controller: on a CPU the cost of n tokens is far from linear in n.

    Each size's cost is the fastest of its last `window` passes. A pass that hit cold caches,
    a first allocation or another process is a spike; a moving average seeded by one stays
    high, and once the controller stops drafting nothing corrects it. The minimum drops a
    spike at the next pass and still follows a slower machine within `window` passes.
    """

    def __init__(self, window: int = 4) -> None:
        self.window = window
        self.recent: dict[int, list[float]] = {}
        self.seconds: dict[int, float] = {}  # the estimate per measured size
        self.counts: dict[int, int] = {}  # passes measured at each size

    def record(self, n_tokens: int, seconds: float) -> None:
        self.counts[n_tokens] = self.counts.get(n_tokens, 0) + 1
        recent = self.recent.setdefault(n_tokens, [])
        recent.append(seconds)
        del recent[:-self.window]
        self.seconds[n_tokens] = min(recent)

    def estimate(self, n_tokens: int, scale_beyond: bool = False) -> float | None:
        """Seconds for n new tokens: measured, else interpolated between measured sizes; None
        before any measurement. Beyond the largest size measured, the cost of that size: an
        optimistic guess, so the controller tries the larger size and measures it, where a
        pessimistic one would keep it from ever learning (a prompt the draft never reads, a
        draft length never tried); with `scale_beyond`, that cost scaled in proportion to
        n (a pass over many tokens, such as a catch-up on text the draft missed, costs about
        that much)."""
        if not self.seconds:
            return None
        if n_tokens in self.seconds:
            return self.seconds[n_tokens]
        sizes = sorted(self.seconds)
        if scale_beyond and n_tokens > sizes[-1]:
            return self.seconds[sizes[-1]] * n_tokens / sizes[-1]
        return float(np.interp(n_tokens, sizes, [self.seconds[n] for n in sizes]))


class LanguageModel(ABC):
    """A causal LM with a KV cache that holds a prefix of some id sequence."""

    name: str
    backend: str
    tokenizer: Tokenizer
    n_ctx: int
    device: str = "cpu"

    def __init__(self) -> None:
        self.cached: list[int] = []  # ids whose keys/values are in the cache, in order
        self.counter = ForwardCounter()
        self.costs = ForwardCosts()

    # --- what a backend implements -------------------------------------------------------
    @abstractmethod
    def _forward(self, ids: Sequence[int], start: int, n_logits: int) -> np.ndarray:
        """Run `ids` at positions start, start+1, ...; return float32 logits of shape
        (n_logits, vocab) for the last n_logits of them."""

    @abstractmethod
    def _truncate(self, length: int) -> None:
        """Drop cache entries at positions >= length."""

    def _forward_tree(self, ids: Sequence[int], start: int, parents: Sequence[int],
                      n_logits: int) -> np.ndarray:
        """As _forward, but entry i attends only to the cache, its ancestors and itself, and
        sits at position start + its depth - 1. parents[i]: the entry i hangs from (-1: the
        cache). Cache entries follow the order of `ids`. Backends that can mask attention
        override this."""
        raise AnyspecError(self.no_trees_message())

    @property
    def sibling_capacity(self) -> int:
        """How many siblings _forward_siblings runs in one pass (1: it cannot)."""
        return 64 if self.supports_trees else 1

    def _forward_siblings(self, ids: Sequence[int], start: int,
                          siblings: Sequence[int]) -> np.ndarray:
        """Run `ids` at positions start, start+1, ..., then each of `siblings` (at most
        `sibling_capacity`) at the position after them, each seeing `ids` but not the others;
        return the siblings' float32 logits, one row each. The cache keeps ids + siblings[:1].
        Here a tree pass, the siblings children of the last of `ids`."""
        parents = [i - 1 for i in range(len(ids))] + [len(ids) - 1] * len(siblings)  # -1: cache
        out = self._forward_tree(list(ids) + list(siblings), start, parents, len(siblings))
        self._truncate(start + len(ids) + 1)
        return out

    @property
    def supports_trees(self) -> bool:
        return type(self)._forward_tree is not LanguageModel._forward_tree

    def no_trees_message(self) -> str:
        return (f"the {self.backend} backend cannot verify a token tree in one pass; run the "
                "target on the hf backend, or draft chains (no tree)")

    # --- the interface the engine uses ---------------------------------------------------
    def logits(self, ids: Sequence[int], n_last: int = 1) -> np.ndarray:
        """Logits predicting the token after each of the last `n_last` positions of `ids`.

        Row i predicts ids[len(ids) - n_last + i + 1]; the last row predicts the next token.
        A new array each call: the caller may write into it.
        """
        if not isinstance(ids, list):
            ids = list(ids)
        if not 1 <= n_last <= len(ids):
            raise ValueError(f"n_last must be in [1, {len(ids)}], got {n_last}")
        self._check_fits(len(ids))
        keep = min(common_prefix_length(self.cached, ids), len(ids) - n_last)
        self.rollback(keep)
        new = ids[keep:]
        start = time.perf_counter()
        out = self._forward(new, keep, n_last)
        self._count(len(new), time.perf_counter() - start)
        self.cached.extend(new)
        return out

    def sibling_logits(self, ids: Sequence[int], siblings: Sequence[int]) -> np.ndarray:
        """Row i: the logits predicting the token after ids + [siblings[i]], as the last row of
        logits(ids + [siblings[i]]). One pass for up to `sibling_capacity` siblings where the
        backend can batch them (a tree mask), a pass each otherwise.
        A new array. The cache keeps ids + siblings[:1]."""
        if not isinstance(ids, list):
            ids = list(ids)
        siblings = [int(s) for s in siblings]
        if self.sibling_capacity < 2 or len(siblings) < 2:
            rows = [self.logits(ids + [s])[-1] for s in reversed(siblings)]  # the first last
            return np.stack(rows[::-1]) if rows else np.empty((0, self.vocab_size), np.float32)
        self._check_fits(len(ids) + 1)
        out = np.empty((len(siblings), self.vocab_size), dtype=np.float32)
        cap = self.sibling_capacity
        for lo in reversed(range(0, len(siblings), cap)):  # the group holding the first last
            keep = common_prefix_length(self.cached, ids)
            self.rollback(keep)
            group = siblings[lo:lo + cap]
            start = time.perf_counter()
            out[lo:lo + len(group)] = self._forward_siblings(ids[keep:], keep, group)
            self._count(len(ids) - keep + len(group), time.perf_counter() - start)
            self.cached.extend(ids[keep:])
            self.cached.append(group[0])
        return out

    def tree_logits(self, committed: Sequence[int], tokens: Sequence[int],
                    parents: Sequence[int]) -> np.ndarray:
        """One pass over a tree of proposed tokens after `committed`: row 0 predicts the
        token after `committed`, row i + 1 the token after node i (its path from the root).

        parents[i]: node i's parent (-1: the root; parents come first). The cache keeps the
        tree's leading chain (node i the child of node i - 1), which is what the next round
        reuses when verification follows it; the other branches are dropped.
        """
        if not isinstance(committed, list):
            committed = list(committed)
        deepest = len(committed) + max(depths(parents), default=0)  # positions go by depth
        if deepest > self.n_ctx:
            raise ContextOverflowError(
                f"{self.name}: a tree reaching position {deepest} does not fit in its context "
                f"of {self.n_ctx}; shorten the prompt or lower max_new_tokens")
        keep = min(common_prefix_length(self.cached, committed), len(committed) - 1)
        self.rollback(keep)
        chain = committed[keep:]  # not yet in the cache; the last one is the tree's root
        block_parents = [i - 1 for i in range(len(chain))] + [
            len(chain) - 1 if p < 0 else len(chain) + p for p in parents]
        start = time.perf_counter()
        out = self._forward_tree(chain + list(tokens), keep, block_parents, len(tokens) + 1)
        self._count(len(chain) + len(tokens), time.perf_counter() - start)
        # the cache holds chain + every node, in order: keep chain + the leading chain of nodes
        on_path = main_path_length(parents)
        self._truncate(keep + len(chain) + on_path)
        self.cached.extend(chain)
        self.cached.extend(tokens[:on_path])
        return out

    def _check_fits(self, length: int) -> None:
        if length > self.n_ctx:
            raise ContextOverflowError(
                f"{self.name}: {length} tokens do not fit in its context of {self.n_ctx}; "
                "shorten the prompt, lower max_new_tokens, or raise the context size (n_ctx)"
            )

    def _count(self, n_tokens: int, seconds: float) -> None:
        """Book one forward pass over n_tokens new positions."""
        self.counter.seconds += seconds
        self.costs.record(n_tokens, seconds)
        self.counter.calls += 1
        self.counter.tokens += n_tokens

    def rollback(self, length: int) -> None:
        """Keep only the first `length` cached positions."""
        if length < len(self.cached):
            self._truncate(length)
            del self.cached[length:]

    def reset(self) -> None:
        self.rollback(0)

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def describe(self) -> str:
        return f"{self.name} [{self.backend}, {self.device}, vocab {self.vocab_size}, ctx {self.n_ctx}]"


def common_prefix_length(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    return next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
