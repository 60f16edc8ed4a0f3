"""Tiny models whose distributions can be enumerated, for exhaustive engine tests.

The logits after a context depend only on its last two tokens, through a table drawn once from
a seeded generator: cheap, deterministic, and easy to compute exact sequence probabilities for.
"""

from __future__ import annotations

import numpy as np

from anyspec.models.base import LanguageModel, Tokenizer


class ToyTokenizer(Tokenizer):
    """Each token is a fixed string; encode splits greedily on the longest match."""

    def __init__(self, pieces: list[str], eos: int | None = None) -> None:
        self.pieces = pieces
        self.vocab_size = len(pieces)
        self.bos_id = None
        self.eos_ids = frozenset() if eos is None else frozenset([eos])

    def encode(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        ids, i = [], 0
        by_length = sorted(range(len(self.pieces)), key=lambda t: -len(self.pieces[t]))
        while i < len(text):
            t = next(t for t in by_length if self.pieces[t] and text.startswith(self.pieces[t], i))
            ids.append(t)
            i += len(self.pieces[t])
        return ids

    def _token_bytes(self, token: int) -> bytes:
        return self.pieces[token].encode()


class ToyModel(LanguageModel):
    backend = "toy"

    def __init__(self, tokenizer: ToyTokenizer, seed: int, sharpness: float = 2.0,
                 n_ctx: int = 64, name: str = "toy") -> None:
        super().__init__()
        self.tokenizer = tokenizer
        self.name = name
        self.n_ctx = n_ctx
        v = tokenizer.vocab_size
        self.table = np.random.default_rng(seed).normal(size=(v + 1, v + 1, v)) * sharpness
        self.forwarded: list[int] = []  # the exact ids handed to the backend, to check caching

    def row(self, context) -> np.ndarray:
        a = context[-2] if len(context) >= 2 else self.tokenizer.vocab_size
        b = context[-1] if context else self.tokenizer.vocab_size
        return self.table[a, b].astype(np.float32)

    def _forward(self, ids, start, n_logits):
        assert start == len(self.cached), "the backend was asked to run at a gap in its cache"
        context = list(self.cached) + list(ids)
        self.forwarded.extend(ids)
        n = len(context)
        return np.stack([self.row(context[:n - n_logits + i + 1]) for i in range(n_logits)])

    def _forward_tree(self, ids, start, parents, n_logits):
        assert start == len(self.cached), "the backend was asked to run at a gap in its cache"
        self.forwarded.extend(ids)
        paths = []
        for i, parent in enumerate(parents):
            paths.append((paths[parent] if parent >= 0 else list(self.cached)) + [ids[i]])
        return np.stack([self.row(path) for path in paths[len(ids) - n_logits:]])

    def _truncate(self, length: int) -> None:
        pass


def softmax(x: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = x.astype(np.float64) / temperature
    z -= z.max()
    e = np.exp(z)
    return e / e.sum()
