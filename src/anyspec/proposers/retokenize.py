"""Proposers for a draft with a different vocabulary: the draft writes text, the target's
tokenizer turns it into proxy target tokens, verified as point masses (lossless at any
temperature, algorithms.md section 0).

- `slem` (Timor et al. 2025): propose every proxy token.
- `tokentiming` (arXiv 2510.15545): align draft and proxy tokens by DTW over their bytes and
  carry each draft token's probability to the proxies it links to; propose proxies while the
  carried confidence stays above a threshold, since on this hardware every extra verified
  position costs target time. Drafting stops at the token that takes the product of the
  draft's probabilities below that threshold: proxies linked to later tokens would be cut.

With `tree_budget` both draft a token tree instead (proposers/tree.py), and every branch's text
is re-tokenized and merged into a tree of proxy target tokens (algorithms.md section 7): the
tree's shape, grown from the draft's probabilities, takes the place of the DTW cut.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..align import dtw_align, target_to_draft
from ..models.base import LanguageModel
from ..noise import Draws
from ..sampling import SamplingParams
from ..trees import children_of
from ..vocab import DraftText, reencode_continuation
from .base import Draw, Proposal, draw_at
from .draft_chain import DraftRun, draft_chain
from .tree import DraftTree, TreeDrafting, confirmed_branch


class DraftSide:
    """The draft model plus its ids for the committed text; shared by cross-vocabulary methods."""

    def __init__(self, draft: LanguageModel, target: LanguageModel,
                 window: int | None = None) -> None:
        self.draft = draft
        self.window = window  # draft tokens of a prompt the draft reads, from its end
        self.target_tokenizer = target.tokenizer
        self.text: DraftText | None = None
        self.last_drafted: list[int] | DraftTree = []  # last round's chain, or its tree
        self.confirmed: list[int] = []  # the branch of last round's tree the text confirmed
        # a draft's end token has no text to re-tokenize (and an instruct draft ends early on
        # plain text): draft text only, and let the target decide where to stop
        self.banned = np.array(sorted(draft.tokenizer.eos_ids), dtype=np.int64)
        # the committed text so far, extended each round rather than decoded again
        self.committed_text = bytearray()
        self.n_committed = 0

    def prefill(self, committed: Sequence[int], warm: bool = True) -> None:
        self.committed_text = bytearray(self.target_tokenizer.decode_bytes(committed))
        self.n_committed = len(committed)
        self.text = DraftText(self.draft.tokenizer, bytes(self.committed_text),
                              window=self.window)
        self.last_drafted = []
        ids = self.text.ids
        if warm and 1 < len(ids) <= self.draft.n_ctx:
            self.draft.logits(ids[:-1], n_last=1)

    @property
    def readable(self) -> bool:
        """Whether the draft has any text to read: a prompt of control tokens only (BOS, an
        empty string) gives it none, and a draft cannot predict from nothing; until the
        target writes some text, rounds decode plainly."""
        return bool(self.text.ids)

    def sync(self, committed: Sequence[int]) -> bytes:
        """Bring the draft ids up to the committed text; return the bytes not covered yet."""
        if len(committed) < self.n_committed:
            raise ValueError("committed ids only grow between prefills")
        self.committed_text += self.target_tokenizer.decode_bytes(committed[self.n_committed:])
        self.n_committed = len(committed)
        drafted = self.last_drafted
        if isinstance(drafted, DraftTree):  # the branch the committed text took, if any
            drafted = confirmed_branch(drafted, self.text.table, self.committed_text,
                                       self.text.covered)
            self.confirmed = drafted
        self.text.sync(self.committed_text, drafted)
        self.last_drafted = []
        return bytes(self.text.pending(self.committed_text))


class RetokenizingProposer:
    def __init__(self, draft: LanguageModel, target: LanguageModel, method: str = "slem",
                 sampled_drafting: bool = False, stop_below: float | None = None,
                 band: int = 8, min_confidence: float = 0.0,
                 draft_window: int | None = None, tree_budget: int | str | None = None) -> None:
        self.name = method
        self.side = DraftSide(draft, target, draft_window)
        self.draft = draft
        self.target_tokenizer = target.tokenizer
        self.sampled_drafting = sampled_drafting
        self.stop_below = stop_below
        self.band = band
        self.min_confidence = min_confidence if method == "tokentiming" else 0.0
        # stop drafting where the DTW cut will fall: tokens past it only cost draft passes
        self.stop_at_cut = self.min_confidence > 0
        self.tree = TreeDrafting(tree_budget, target) if tree_budget else None  # else chains

    def prefill(self, committed: Sequence[int], warm: bool = True) -> None:
        self.side.prefill(committed, warm)
        if self.tree:
            self.tree.reset()

    def propose(self, committed: Sequence[int], k: int, params: SamplingParams,
                draws: Draws) -> Proposal:
        pending = self.side.sync(committed)
        if not self.side.readable:
            return Proposal()
        draw = self._draw(params, draws)
        if self.tree:
            return self._propose_tree(committed, pending, k, params, draw)
        run = draft_chain(self.draft, self.side.text.ids, k, params, draw,
                          stop_below=self.stop_below, banned=self.side.banned,
                          confidence=self.min_confidence > 0,
                          stop_after_product=self.min_confidence if self.stop_at_cut else None)
        return Proposal(self.proxies(committed, pending, run))

    def proxies(self, committed: Sequence[int], pending: bytes, run: DraftRun) -> list[int]:
        """The target ids a draft chain stands for (and it becomes last round's chain)."""
        self.side.last_drafted = run.tokens
        drafted = self.draft.tokenizer.decode_bytes(run.tokens)
        if not drafted.startswith(pending):  # the draft did not finish the pending character
            return []
        proxies = reencode_continuation(self.target_tokenizer, committed, drafted[len(pending):])
        if self.min_confidence > 0 and proxies:
            proxies = proxies[:self._confident_prefix(run.tokens, run.confidence, proxies)]
        return proxies

    def _draw(self, params: SamplingParams, draws: Draws) -> Draw | None:
        """Sampled drafting: the draft's own noise at its own positions (its text is
        re-tokenized, so its steps are not the target's positions); else None, the argmax."""
        if not self.sampled_drafting or params.greedy:
            return None
        return draw_at(draws.own, len(self.side.text.ids))

    def _propose_tree(self, committed: Sequence[int], pending: bytes, depth: int,
                      params: SamplingParams, draw: Draw | None) -> Proposal:
        drafting = params if draw is not None else SamplingParams(temperature=0.0)
        tree, _ = self.tree.grow(self.draft, self.side.text.ids, committed, depth, drafting,
                                 draw, self.side.banned, taken=self.side.confirmed)
        self.side.last_drafted, self.side.confirmed = tree, []
        tokens, parents = proxy_tree(tree, self.draft.tokenizer, self.target_tokenizer,
                                     committed, pending, depth)
        return Proposal(tokens, parents=parents)  # point masses: no laws

    def _confident_prefix(self, drafted: list[int], confidence: list[float],
                          proxies: list[int]) -> int:
        """How many proxies to keep: while the product of the linked draft tokens' probabilities
        (each counted once, at its first link) stays >= min_confidence."""
        if math.prod(confidence) >= self.min_confidence:
            return len(proxies)  # every draft token links somewhere: the product is the floor
        d_table = self.draft.tokenizer.bytes_table()
        t_table = self.target_tokenizer.bytes_table()
        # latin-1 maps each byte to one character: byte-level distances, never U+FFFD
        path = dtw_align([d_table[i].decode("latin-1") for i in drafted],
                         [t_table[i].decode("latin-1") for i in proxies], band=self.band)
        links = target_to_draft(path, len(proxies))
        seen, cumulative = -1, 1.0
        for j, linked in enumerate(links):
            for i in linked:
                if i > seen:
                    cumulative *= confidence[i]
                    seen = i
            if cumulative < self.min_confidence:
                return max(j, 1)
        return len(proxies)


def proxy_tree(tree: DraftTree, draft_tokenizer, target_tokenizer, committed: Sequence[int],
               pending: bytes, max_depth: int) -> tuple[list[int], list[int]]:
    """A draft tree as a tree of target tokens: (tokens, parents), parents first.

    Each leaf's branch of draft text is re-tokenized after the committed ids (the first
    `max_depth` proxies kept) and the results are merged into a trie: siblings are distinct
    tokens (a repeated point mass could never be accepted: its first try zeroes it). Inner
    branches' text is a prefix of their leaves', so only leaves are re-tokenized. Leaves come
    in depth-first order, so the first leaf's proxies form the leading chain a one-sequence
    cache keeps. A branch that does not finish the `pending` character the committed text
    ends with is left out.
    """
    children = children_of(tree.parents)
    tokens: list[int] = []
    parents: list[int] = []
    node_of: dict[tuple[int, int], int] = {}  # (parent, token) -> node
    for leaf in range(len(tree.tokens)):
        if children[leaf + 1]:
            continue
        text = draft_tokenizer.decode_bytes(tree.path(leaf))
        if not text.startswith(pending):
            continue
        node = -1
        new = text[len(pending):]
        for token in reencode_continuation(target_tokenizer, committed, new)[:max_depth]:
            if (node, token) not in node_of:
                node_of[node, token] = len(tokens)
                tokens.append(token)
                parents.append(node)
            node = node_of[node, token]
    return tokens, parents
