"""`hybrid`: each round, the guess with the most expected tokens per second.

Four plans per round, scored with the cost model of `auto` (control/draft_length.py): a plan
committing E tokens on average in T seconds is worth E / T, where E follows the geometric
model from the acceptance measured for each source, and T adds the target's measured cost of
a pass over the proposed tokens, the draft's measured cost per step and each source's time
outside the models.

- plain: no proposal, one target token per pass;
- lookup: the model-free continuation of text already seen (lookup.py, with `suffix`'s
  history), costing no model pass (its search, well under a millisecond, runs every round
  and is left out of the scores); only when there is a match;
- model: the draft model's proposal (sd or a cross-vocabulary method), k steps;
- both: the two as branches of one token tree, when the target verifies trees and both are
  point masses.

The draft model reads the text only when its plan is chosen, catching up on what it missed
(the prompt included); the catch-up is charged to the model's plans, spread over
`probe_every` rounds. While the model loses to the other plans it is still tried (2 steps)
every `probe_every` rounds, when catching up costs little, so a change in its acceptance is
noticed.

Acceptance is learnt from what the target committed: the next round's committed ids show how
far each proposed chain was accepted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..control.draft_length import expected_tokens
from ..models.base import LanguageModel
from ..noise import Draws
from ..sampling import SamplingParams
from .base import Proposal, Proposer
from .lookup import LookupProposer, Trie


@dataclass
class Source:
    """What a source has shown: its acceptance (decayed counts, as auto's) and its seconds
    per round outside the model passes (smoothed; the model's re-tokenizing and aligning)."""

    accepted: float = 1.0
    rejected: float = 1.0  # a weak prior: acceptance 0.5
    overhead: float = 0.0
    rounds: int = 0

    @property
    def acceptance(self) -> float:
        return min(self.accepted / (self.accepted + self.rejected), 0.999)

    def observe(self, n_ok: int, n_proposed: int) -> None:
        self.accepted = 0.95 * self.accepted + n_ok
        self.rejected = 0.95 * self.rejected + (1 if n_ok < n_proposed else 0)
        self.rounds += 1

    def timed(self, seconds: float) -> None:
        self.overhead += 0.2 * (seconds - self.overhead)


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[n] == b[n]:
        n += 1
    return n


class HybridProposer:
    name = "hybrid"

    def __init__(self, lookup: LookupProposer, model: Proposer, target: LanguageModel,
                 probe_every: int = 16, warmup_rounds: int = 3) -> None:
        self.lookup, self.model, self.target = lookup, model, target
        self.draft = model.draft
        self.trees = target.supports_trees
        self.probe_every, self.warmup_rounds = probe_every, warmup_rounds
        self.sources = {"lookup": Source(), "model": Source()}
        self.chosen: Counter[str] = Counter()  # plans taken, over the generator's life
        self._pending: tuple[int, dict[str, list[int]]] | None = None  # (at, chains proposed)
        self._model_at = 0  # committed ids the draft had caught up with when it last ran
        self._since_model = 0  # rounds since the model last proposed

    def prefill(self, committed: Sequence[int], warm: bool = True) -> None:
        self.lookup.prefill(committed, warm)
        # the draft reads the prompt the first time a plan needs it, a cost charged to its
        # plans: read now, it is wasted whenever lookup wins every round
        self.model.prefill(committed, warm=False)
        self._model_at = 0
        self._pending, self._since_model = None, 0

    def propose(self, committed: Sequence[int], k: int, params: SamplingParams,
                draws: Draws) -> Proposal:
        self._learn(committed)
        if k < 1:
            return Proposal()
        chain = self.lookup.candidates(committed, k).best_chain()  # costs well under a ms
        plan, steps = self._plan(len(chain), k, len(committed))
        self.chosen[plan] += 1
        at = len(committed)
        if plan == "plain":
            self._since_model += 1
            return Proposal()
        if plan == "lookup":
            self._since_model += 1
            self._pending = (at, {"lookup": chain[:steps]})
            return Proposal(chain[:steps])
        proposal = self._run_model(committed, steps, params, draws)
        if plan == "both" and proposal.laws is None and proposal.parents is None:
            drafted = list(proposal.tokens[:k])  # re-tokenized text may run past k
            trie = Trie()
            trie.add(chain)
            trie.add(drafted)
            self._pending = (at, {"lookup": chain, "model": drafted})
            if len(trie.tokens) == max(len(chain), len(drafted)):
                return Proposal(max(chain, drafted, key=len))  # one holds the other
            tokens, parents = trie.top(len(trie.tokens))
            return Proposal(tokens, None, parents)
        if proposal.parents is None:
            self._pending = (at, {"model": list(proposal.tokens)})
        return proposal

    def _run_model(self, committed: Sequence[int], k: int, params: SamplingParams,
                   draws: Draws) -> Proposal:
        draft_before = self.draft.counter.seconds if self.draft else 0.0
        started = time.perf_counter()
        proposal = self.model.propose(committed, k, params, draws)
        draft_s = (self.draft.counter.seconds - draft_before) if self.draft else 0.0
        self.sources["model"].timed(time.perf_counter() - started - draft_s)
        self._model_at, self._since_model = len(committed), 0
        return proposal

    def _learn(self, committed: Sequence[int]) -> None:
        """Score last round's chains against what the target committed after them."""
        if self._pending is None:
            return
        at, chains = self._pending
        self._pending = None
        new = committed[at:]
        for source, chain in chains.items():
            self.sources[source].observe(common_prefix(chain, new), len(chain))

    # --- the cost model ------------------------------------------------------------------
    def _target(self, n: int) -> float | None:
        return self.target.costs.estimate(n)

    def _plain_rate(self) -> float:
        seconds = self._target(1)
        return 1.0 / seconds if seconds else 0.0

    def _warming_up(self) -> bool:
        return self.draft is not None and self.sources["model"].rounds < self.warmup_rounds

    def _catch_up(self, at: int) -> float:
        behind = at - self._model_at
        if self.draft is None or behind <= 1:
            return 0.0
        return (self.draft.costs.estimate(behind) or 0.0) / self.probe_every

    def _model_best(self, k: int, at: int, lookup_chain: int = 0) -> tuple[int, float]:
        """(steps, tokens per second) of the best model plan (with the lookup chain as a
        second branch when lookup_chain > 0), (0, 0.0) when it cannot be estimated."""
        step = self.draft.costs.estimate(1) if self.draft is not None else None
        if step is None:
            return 0, 0.0
        model, lookup = self.sources["model"], self.sources["lookup"]
        fixed = model.overhead + self._catch_up(at)
        best = (0, 0.0)
        for steps in range(1, k + 1):
            verify = self._target(steps + lookup_chain + 1)
            if verify is None:
                break
            tokens = expected_tokens(model.acceptance, steps)
            if lookup_chain:
                tokens = both_expected_tokens(lookup.acceptance, lookup_chain,
                                              model.acceptance, steps)
            rate = tokens / (steps * step + verify + fixed)
            if rate > best[1]:
                best = (steps, rate)
        return best

    def _plan(self, n_lookup: int, k: int, at: int) -> tuple[str, int]:
        """(plan, its length: the lookup tokens to propose, or the model's steps)."""
        if self.draft is not None and self._warming_up() and not n_lookup:
            return "model", min(4, k)
        plans = {"plain": (0, self._plain_rate())}
        if n_lookup:
            lookup = self.sources["lookup"]
            if self._target(n_lookup + 1) is None:
                return "lookup", n_lookup  # nothing measured yet: try it
            plans["lookup"] = max(((n, expected_tokens(lookup.acceptance, n) / seconds)
                                   for n in range(1, n_lookup + 1)
                                   if (seconds := self._target(n + 1)) is not None),
                                  key=lambda plan: plan[1])
        if self.draft is not None:
            plans["model"] = self._model_best(k, at)
            if n_lookup and self.trees:
                plans["both"] = self._model_best(k, at, n_lookup)
        plan = max(plans, key=lambda name: plans[name][1])
        if plan in ("plain", "lookup") and self.draft is not None \
                and self._since_model >= self.probe_every and self._catch_up(at) * self.probe_every \
                <= 0.1 * self._since_model / max(plans["plain"][1], 1e-9):
            return "model", min(2, k)  # a probe: catching up costs at most a tenth of the wait
        return plan, plans[plan][0]


def both_expected_tokens(a_lookup: float, n_lookup: int, a_model: float, n_model: int) -> float:
    """Tokens a round commits on average when two chains are verified as one tree: the i-th
    token is accepted when either chain's first i are, taken as independent."""
    total = 1.0
    for i in range(1, max(n_lookup, n_model) + 1):
        miss_lookup = 1 - (a_lookup ** i if i <= n_lookup else 0.0)
        miss_model = 1 - (a_model ** i if i <= n_model else 0.0)
        total += 1 - miss_lookup * miss_model
    return total
