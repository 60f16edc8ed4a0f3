"""Growing a draft token tree at run time (DySpec, arXiv 2410.11744; algorithms.md section 6).

A max-heap holds slots for new children, each valued by an estimate of the probability that
the target's walk accepts a child there; growing the tree greedily by that value maximises the
expected number of accepted tokens. Popping a slot adds its child y, drawn from the parent's
residual distribution R (siblings without replacement), and pushes two slots: y's first child
and y's next sibling. The draft runs on a node (the root included) only when its first-child
slot is popped, so leaves cost no draft pass. A slot is valued before its child is drawn:
letting the drawn token decide whether it joins the tree would bias verification. Stops at
`budget` nodes, or, given measured costs, when no slot raises the expected tokens per second.

DySpec values a child by the draft's own probability R[y] along the path. With a draft much
weaker than the target that overrates siblings (a flat R leaves 1 - R[y] high): on Gemma 3 /
SmolLM2 at temperature 1 its trees were flat and accepted less than a chain. So the value
here is the acceptance `AcceptanceModel` predicts from R[y] and the child's rank among its
siblings, learnt from the rounds so far: still R-driven, but calibrated on the pair, which
accepts more than the chain on the same questions.

Sampling: y ~ R, drawn with the noise of the position y would take (a node at depth d, at
step d - 1): siblings drawn one after another from R less the earlier ones are the successive
winners of one exponential race, Gumbel-top-k. R is what the rejection rule verifies
(verify/tree.py). Greedy: y = argmax R, R being the draft's softmax (a value estimate only;
the target checks point masses).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..models.base import LanguageModel
from ..sampling import SamplingParams, target_probs
from ..trees import children_of
from .base import Draw


@dataclass
class DraftTree:
    tokens: list[int] = field(default_factory=list)  # draft ids
    parents: list[int] = field(default_factory=list)  # -1: a child of the root
    probs: list[np.ndarray] = field(default_factory=list)  # the R each node was drawn from
    ranks: list[int] = field(default_factory=list)  # 1: its parent's first child, 2: second...

    def path(self, node: int) -> list[int]:
        """The draft ids from the root down to `node`."""
        out = []
        while node >= 0:
            out.append(self.tokens[node])
            node = self.parents[node]
        return out[::-1]


class AcceptanceModel:
    """P(a child is accepted | its earlier siblings were rejected), by its rank and by the
    probability R[y] it had under the draft, counted over the rounds verified so far.

    Starts from a prior close to DySpec's (acceptance about R[y] for a first child, half that
    for later ones), worth a few rounds, so a pair soon overrides it.
    """

    EDGES = np.array([0.05, 0.2, 0.5, 0.8])  # bins of R[y]
    MAX_RANK = 4  # ranks 4 and later share a row
    PRIOR_WEIGHT = 4.0

    def __init__(self) -> None:
        centres = np.array([0.03, 0.12, 0.35, 0.65, 0.9])
        prior = np.stack([centres] + [centres / 2] * (self.MAX_RANK - 1))
        self.accepted = prior * self.PRIOR_WEIGHT
        self.tried = np.full_like(prior, self.PRIOR_WEIGHT)

    def _cell(self, rank: int, p: float) -> tuple[int, int]:
        return min(rank, self.MAX_RANK) - 1, int(np.searchsorted(self.EDGES, p, side="right"))

    def rate(self, rank: int, p: float) -> float:
        cell = self._cell(rank, p)
        return float(self.accepted[cell] / self.tried[cell])

    def expected_rate(self, rank: int, r: np.ndarray) -> float:
        """The rate of a child not drawn yet, y ~ r: sum over y of r[y] rate(rank, r[y])."""
        rates = self.accepted[self._cell(rank, 0.0)[0]] / self.tried[self._cell(rank, 0.0)[0]]
        big = r[r >= self.EDGES[0]]  # at most 20 entries; the rest share the first bin
        bins = np.searchsorted(self.EDGES, big, side="right")
        return float((big * rates[bins]).sum() + max(0.0, 1.0 - float(big.sum())) * rates[0])

    def first_child_rate(self) -> float:
        """The rate of a first child before the draft has run on its parent."""
        return float(self.accepted[0].sum() / self.tried[0].sum())

    def observe(self, rank: int, p: float, accepted: bool) -> None:
        cell = self._cell(rank, p)
        self.tried[cell] += 1
        self.accepted[cell] += accepted

    def learn(self, tree: DraftTree, tokens: Sequence[int], committed: Sequence[int]) -> None:
        """Count the children the walk tried: `tokens` are the tree's tokens as proposed,
        `committed` what the round committed after the tree's root."""
        children = children_of(tree.parents)
        node = -1
        for token in committed:
            match = None
            for c in children[node + 1]:  # tried in order until one is accepted
                p = float(tree.probs[c][tree.tokens[c]])
                if tokens[c] == token:
                    match = c
                    self.observe(tree.ranks[c], p, True)
                    break
                self.observe(tree.ranks[c], p, False)
            if match is None:
                return
            node = match


@dataclass(frozen=True)
class RoundCosts:
    """Measured seconds: a plain round (one target token), one draft pass, and each further
    token in the target's pass."""

    plain: float
    draft_pass: float
    per_token: float
    MIN_PASSES = 3

    @classmethod
    def measured(cls, draft: LanguageModel, target: LanguageModel) -> RoundCosts | None:
        # sizes measured a few times: a prompt's prefill is a size measured once (and cold)
        def seen(costs, n: int) -> bool:
            return costs.counts.get(n, 0) >= cls.MIN_PASSES

        sizes = [n for n in target.costs.seconds if 2 <= n and seen(target.costs, n)]
        if not (seen(target.costs, 1) and seen(draft.costs, 1) and sizes):
            return None
        plain, draft_pass, n = target.costs.seconds[1], draft.costs.seconds[1], max(sizes)
        slope = (target.costs.seconds[n] - plain) / (n - 1)
        return cls(plain, draft_pass, max(slope, 1e-3 * plain))  # never free: noise can be < 0


class DraftProbability:
    """DySpec's own estimate, kept for comparison (benchmarks/tree_sizes.py): a child is
    accepted with its draft probability R[y], slots are taken by the probability of reaching
    them, and nothing is learnt."""

    def rate(self, rank: int, p: float) -> float:
        return p

    def expected_rate(self, rank: int, r: np.ndarray) -> float:
        return 1.0

    def first_child_rate(self) -> float:
        return 1.0

    def learn(self, tree: DraftTree, tokens: Sequence[int], committed: Sequence[int]) -> None:
        pass


def grow_tree(draft: LanguageModel, context: Sequence[int], budget: int, max_depth: int,
              params: SamplingParams, draw: Draw | None = None,
              banned: np.ndarray | None = None,
              acceptance: AcceptanceModel | DraftProbability | None = None,
              costs: RoundCosts | None = None) -> DraftTree:
    """Up to `budget` draft tokens after `context` (draft ids), no deeper than max_depth,
    in depth-first order with each node's children in the order they were drawn: the first
    children from the root form a chain at the front (what a one-sequence cache keeps).
    draw: how a child at depth d is sampled, draw(R, d - 1); None: the argmax.

    costs: grow by expected tokens per second instead: take the slot with the most value per
    second it costs (a child of a node the draft has not run on costs a draft pass too), and
    stop when none would raise the round's expected tokens per second."""
    tree = DraftTree()
    max_depth = min(max_depth, draft.n_ctx - len(context) + 1)
    if budget < 1 or max_depth < 1:
        return tree
    acceptance = acceptance or AcceptanceModel()
    context = list(context)
    depth: list[int] = []
    heap: list = []
    order = 0  # ties in value go to the older slot
    per_token = costs.per_token if costs else 1.0
    per_pass = costs.draft_pass if costs else 0.0
    expected, seconds = 1.0, costs.plain if costs else 0.0  # the round so far: plain decoding

    def distribution(node: int) -> np.ndarray | None:
        row = draft.logits(context + tree.path(node), n_last=1)[0]
        r = target_probs(row, params if not params.greedy else SamplingParams(1.0))
        if banned is not None:
            r[banned] = 0.0
        total = r.sum(dtype=np.float64)
        return r / np.float32(total) if total > 0 else None

    def push_child_slot(parent: int, r: np.ndarray, rank: int, reach: float) -> None:
        """The rank-th child of `parent`, to be drawn from r; reach: P(the walk tries it).
        Valued before the draw: whether a child joins the tree must not depend on which
        token it is, or it is no longer a draw from r and verification would be biased."""
        nonlocal order
        order += 1
        value = reach * acceptance.expected_rate(rank, r)
        heapq.heappush(heap, (-value / per_token, order, parent, r, rank, reach))

    def push_first_child_later(node: int, reach: float) -> None:
        """A slot whose distribution needs a draft pass: valued at the mean first-child rate
        until it is popped."""
        nonlocal order
        order += 1
        value = reach * acceptance.first_child_rate()
        heapq.heappush(heap, (-value / (per_token + per_pass), order, node, None, 1, reach))

    push_first_child_later(-1, 1.0)  # the root: no draft pass unless one pays
    while heap and len(tree.tokens) < budget:
        neg_ratio, _, parent, r, rank, reach = heapq.heappop(heap)
        if costs and -neg_ratio * seconds <= expected:  # nothing left raises tokens per second
            break
        if r is None:  # the draft runs on `parent` now; the slot goes back with its real value
            if parent >= 0 and (depth[parent] >= max_depth
                                or tree.tokens[parent] in draft.tokenizer.eos_ids):
                continue
            seconds += per_pass
            r = distribution(parent)
            if r is not None:
                push_child_slot(parent, r, 1, reach)
            continue
        d = 1 if parent < 0 else depth[parent] + 1
        y = int(np.argmax(r)) if draw is None else draw(r, d - 1)
        child = len(tree.tokens)
        tree.tokens.append(y)
        tree.parents.append(parent)
        tree.probs.append(r)
        tree.ranks.append(rank)
        depth.append(d)
        accepted = reach * acceptance.rate(rank, float(r[y]))  # P(the walk accepts y)
        expected += accepted
        seconds += per_token
        push_first_child_later(child, accepted)
        rest = r.copy()  # the next sibling is drawn without y
        rest[y] = 0.0
        total = rest.sum(dtype=np.float64)
        if total > 0:
            push_child_slot(parent, rest / np.float32(total), rank + 1,
                            reach * (1.0 - acceptance.rate(rank, float(r[y]))))
    return depth_first(tree)


def depth_first(tree: DraftTree) -> DraftTree:
    """The same tree with nodes renumbered in depth-first order, children kept in order."""
    children = children_of(tree.parents)
    out, new_index = DraftTree(), {-1: -1}
    stack = list(reversed(children[0]))
    while stack:
        node = stack.pop()
        new_index[node] = len(out.tokens)
        out.tokens.append(tree.tokens[node])
        out.parents.append(new_index[tree.parents[node]])
        out.probs.append(tree.probs[node])
        out.ranks.append(tree.ranks[node])
        stack.extend(reversed(children[node + 1]))
    return out


def confirmed_branch(tree: DraftTree, table: Sequence[bytes], text: bytes, pos: int) -> list[int]:
    """The draft ids of the branch whose bytes the committed `text` confirms furthest from
    `pos` on: what the draft's cache may keep after a round that verified `tree`."""
    children = children_of(tree.parents)
    best: tuple[int, list[int]] = (pos, [])
    stack = [(-1, pos, [])]
    while stack:
        node, at, ids = stack.pop()
        if at > best[0]:
            best = (at, ids)
        for c in reversed(children[node + 1]):  # ties go to the earlier branch
            b = table[tree.tokens[c]]
            if b and text[at:at + len(b)] == b:
                stack.append((c, at + len(b), ids + [tree.tokens[c]]))
    return best[1]


class TreeDrafting:
    """What a proposer needs to draft trees: the budget, and acceptance learnt round by round.

    budget "auto": grown while the target's and draft's measured costs say a node raises the
    expected tokens per second, up to AUTO_LIMIT tokens; a number: that many tokens."""

    AUTO_LIMIT = 64

    def __init__(self, budget: int | str, target: LanguageModel) -> None:
        self.by_cost = budget == "auto"
        self.budget = self.AUTO_LIMIT if self.by_cost else int(budget)
        self.target = target
        self.acceptance: AcceptanceModel | DraftProbability = AcceptanceModel()
        self._last: tuple[DraftTree, list[int], int] | None = None  # tree, its target ids, at

    def reset(self) -> None:
        """A new prompt: the last tree's round will not be followed."""
        self._last = None

    def grow(self, draft: LanguageModel, context: Sequence[int], committed: Sequence[int],
             max_depth: int, params: SamplingParams, draw: Draw | None = None,
             banned: np.ndarray | None = None, to_target: np.ndarray | None = None,
             taken: Sequence[int] | None = None) -> tuple[DraftTree, list[int]]:
        """A tree after the draft ids `context` and its tokens as target ids (to_target maps
        draft ids to target ids; None: the same ids), after learning from the last round.

        taken: the last tree's branch the committed text took, as its tokens, for proposers
        whose committed ids are not the tree's tokens (re-tokenized text); None: the ids
        committed since the last tree."""
        if self._last is not None:
            tree, tokens, at = self._last
            self.acceptance.learn(tree, tokens, committed[at:] if taken is None else taken)
        budget, costs = self.budget, None
        if self.by_cost:
            costs = RoundCosts.measured(draft, self.target)
            if costs is None:  # not measured yet: a chain's worth, to measure, not AUTO_LIMIT
                budget = max_depth
        tree = grow_tree(draft, context, budget, max_depth, params, draw, banned,
                         self.acceptance, costs)
        tokens = tree.tokens if to_target is None else [int(to_target[t]) for t in tree.tokens]
        self._last = (tree, tokens, len(committed))
        return tree, tokens
