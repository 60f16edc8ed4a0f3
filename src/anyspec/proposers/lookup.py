"""Model-free drafting from text already seen: `lookup` and `suffix` (no draft model).

`lookup` is prompt lookup decoding (Saxena 2023; transformers' `prompt_lookup_num_tokens`,
vLLM's ngram proposer): find the longest recent n-gram of the target ids that ends the
committed text (between `min_ngram` and `max_ngram` tokens) earlier in the prompt or the
output so far, and propose what followed it.

`suffix` matches the same way, and where the current sequence has no match, in the earlier
prompts and outputs of this generator (a server keeps one generator per setting across
requests, so one request drafts from another's answer), as SuffixDecoding does (Oliaro et al.
2024) with a suffix tree. Here the earlier sequences are kept in one array, separated by -1,
and scanned directly with numpy.

Every match of the longest n-gram continues into up to k tokens; the continuations merge
into a trie whose nodes count the matches through them. A target that verifies trees gets
the trie's `tree_budget` most-matched nodes; otherwise, or when the trie is a chain, the
proposal is the chain that follows the most-matched child (the most recent match on a tie).

A proposal is a deterministic function of the committed ids, so its tokens are point masses
(verify/chain.py): lossless at every temperature.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..models.base import LanguageModel
from ..noise import Draws
from ..sampling import SamplingParams
from .base import Proposal

HISTORY_TOKENS = 1 << 18  # suffix: the earlier sequences kept, up to about this many ids
SEPARATOR = -1  # between two sequences of the history: no match or continuation crosses it


def match_starts(tokens: np.ndarray, suffix: np.ndarray) -> np.ndarray:
    """The positions i, ascending, where tokens[i:i + len(suffix)] == suffix and at least one
    token follows the match: a scan for the first token, then a filter per further token."""
    n = len(suffix)
    starts = np.flatnonzero(tokens[:len(tokens) - n] == suffix[0])
    for j in range(1, n):
        starts = starts[tokens[starts + j] == suffix[j]]
    return starts


class Trie:
    """Continuations merged by their common prefixes: node i is (token, parent, count)."""

    def __init__(self) -> None:
        self.tokens: list[int] = []
        self.parents: list[int] = []
        self.counts: list[int] = []
        self._child: dict[tuple[int, int], int] = {}  # (parent, token) -> node
        self._children: dict[int, list[int]] = {}  # parent -> its children, in order

    def add(self, continuation: Sequence[int]) -> None:
        parent = -1
        for token in continuation:
            node = self._child.get((parent, int(token)))
            if node is None:
                node = len(self.tokens)
                self._child[(parent, int(token))] = node
                self._children.setdefault(parent, []).append(node)
                self.tokens.append(int(token))
                self.parents.append(parent)
                self.counts.append(0)
            self.counts[node] += 1
            parent = node

    def best_chain(self) -> list[int]:
        """Token ids down the most-counted child at each node (the first added on a tie)."""
        out, parent = [], -1
        while True:
            children = self._children.get(parent)
            if not children:
                return out
            parent = max(children, key=lambda i: (self.counts[i], -i))
            out.append(self.tokens[parent])

    def top(self, budget: int) -> tuple[list[int], list[int]]:
        """(tokens, parents) of the `budget` most-counted nodes, each with its ancestors (a
        node's count never exceeds its parent's, so taking nodes by count keeps the tree
        connected); parents come first."""
        keep = sorted(range(len(self.tokens)), key=lambda i: (-self.counts[i], i))[:budget]
        keep.sort()  # a parent was created before its children
        index = {old: new for new, old in enumerate(keep)}
        return ([self.tokens[i] for i in keep],
                [-1 if self.parents[i] < 0 else index[self.parents[i]] for i in keep])


class LookupProposer:
    """Drafts the continuation of the longest n-gram match (module docstring); `history`:
    also search this generator's earlier sequences (`suffix`)."""

    draft = None

    def __init__(self, target: LanguageModel, history: bool = False, min_ngram: int = 2,
                 max_ngram: int = 4, max_matches: int = 16,
                 tree_budget: int | None = None) -> None:
        self.name = "suffix" if history else "lookup"
        self.min_ngram, self.max_ngram, self.max_matches = min_ngram, max_ngram, max_matches
        self.tree_budget = tree_budget if target.supports_trees else None
        # suffix: the earlier sequences, oldest first, each followed by SEPARATOR; None: lookup
        self.history = np.empty(0, dtype=np.int64) if history else None
        self._seen: list[int] = []  # the committed ids of the current sequence, last seen

    def prefill(self, committed: Sequence[int], warm: bool = True) -> None:
        if self.history is None:
            return
        if self._seen:
            kept = self.history[-HISTORY_TOKENS:]
            if len(kept) < len(self.history):  # drop whole sequences only
                kept = kept[np.argmax(kept == SEPARATOR) + 1:]
            self.history = np.concatenate([kept, self._seen, [SEPARATOR]]).astype(np.int64)
        self._seen = list(committed)

    def propose(self, committed: Sequence[int], k: int, params: SamplingParams,
                draws: Draws) -> Proposal:
        if self.history is not None:  # the sequence goes into the history at the next prefill
            self._seen = list(committed)
        if k < 1:
            return Proposal()
        return self.proposal(self.candidates(committed, k))

    def proposal(self, trie: Trie) -> Proposal:
        """The trie's `tree_budget` most-matched nodes when the target verifies trees and the
        trie branches, else its best chain."""
        chain = trie.best_chain()
        if self.tree_budget is not None and len(trie.tokens) > len(chain):
            tokens, parents = trie.top(self.tree_budget)
            return Proposal(tokens, None, parents)
        return Proposal(chain)

    def candidates(self, committed: Sequence[int], k: int) -> Trie:
        """The trie of up to k tokens after each match of the longest n-gram that matches,
        the latest first: in the current sequence, else (suffix) in the earlier ones, whose
        text predicts the current sequence less well than its own."""
        context = np.asarray(committed, dtype=np.int64)
        trie = Trie()
        for tokens in ([context] if self.history is None else [context, self.history]):
            for n in range(min(self.max_ngram, len(context)), self.min_ngram - 1, -1):
                starts = match_starts(tokens, context[-n:])[::-1][:self.max_matches]
                for start in starts:
                    continuation = tokens[start + n:start + n + k]
                    trie.add(continuation[:np.argmax(np.append(continuation, SEPARATOR)
                                                     == SEPARATOR)])
                if len(starts):
                    return trie
        return trie
