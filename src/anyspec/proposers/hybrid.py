"""`hybrid`: each round, the guess with the most expected tokens per second.

Four plans per round, scored with the cost model of `auto` (control/draft_length.py): a plan
committing E tokens on average in T seconds is worth E / T, where E follows the geometric
model from the acceptance measured for each source, and T adds the target's measured cost of
a pass over the proposed tokens, the draft's measured cost per step and each source's time
outside the models.

- plain: no proposal, one target token per pass;
- lookup: the model-free continuation of text already seen (lookup.py, with `suffix`'s
  history; a tree of its matches where the target verifies trees), costing no model pass
  (its search, well under a millisecond, runs every round and is left out of the scores);
  only when there is a match;
- model: the draft model's proposal (sd or a cross-vocabulary method), k steps;
- both: the two as branches of one token tree, when the target verifies trees and both are
  point masses.

The draft model reads the text only when its plan is chosen, catching up on what it missed
(the prompt included); the catch-up is charged to the plan that needs it, a prompt's only in
part, as it serves the request's later rounds too: a request that has run r rounds is taken
to run about r more, so the plan pays an r-th. While the model loses to the other plans it
is still tried (2 steps) every `probe_every` rounds, when catching up costs at most a tenth
of the time since it last ran, so a change in its acceptance is noticed.

Acceptance is learnt from what the target committed: the next round's committed ids show how
far each chain matched (lookup's every round, proposed or not). The scores leave things out
(the engine's own time per round, a tree's other branches, chains that fail together,
re-tokenized text running past its steps), so each plan's score is corrected by how its own
rounds went: the tokens they committed and the seconds they took, over those predicted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

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


PRIOR_ROUNDS = 4  # a plan's calibration starts as this many rounds that went as predicted


class Plan(NamedTuple):
    name: str  # plain, lookup, model or both
    length: int  # the lookup tokens to propose, or the model's steps
    tokens: float = 1.0  # committed tokens the scores expect
    seconds: float = 0.0  # the round's seconds they expect (0: not known yet)
    deferred: float = 0.0  # the part of those the score spreads over later rounds


@dataclass
class Calibration:
    """A plan's rounds against their scores: sums of tokens and seconds, predicted and
    measured, that fade each round (so a plan that stopped being chosen on a few unlucky
    rounds is tried again), plus a prior of `PRIOR_ROUNDS` rounds as predicted."""

    rounds: float = 0.0
    predicted_tokens: float = 0.0
    tokens: float = 0.0
    predicted_seconds: float = 0.0
    seconds: float = 0.0

    def observe(self, plan: Plan, tokens: int, seconds: float) -> None:
        if plan.seconds <= 0:
            return
        self.rounds += 1
        self.predicted_tokens += plan.tokens
        self.tokens += tokens
        self.predicted_seconds += plan.seconds
        self.seconds += seconds

    def fade(self, factor: float = 0.98) -> None:
        self.rounds *= factor
        self.predicted_tokens *= factor
        self.tokens *= factor
        self.predicted_seconds *= factor
        self.seconds *= factor

    @property
    def gain(self) -> float:
        """Measured tokens per second over predicted (1 before any round)."""
        if not self.rounds:
            return 1.0
        prior = PRIOR_ROUNDS / self.rounds  # the prior's weight per unit of the sums
        tokens = (self.tokens + prior * self.predicted_tokens) / ((1 + prior) * self.predicted_tokens)
        seconds = (1 + prior) * self.predicted_seconds / (self.seconds + prior * self.predicted_seconds)
        return tokens * seconds


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
        self.calibration = {name: Calibration() for name in ("plain", "lookup", "model", "both")}
        self.chosen: Counter[str] = Counter()  # plans taken, over the generator's life
        # last round: (committed ids then, its plan, when it began, the chains to score)
        self._pending: tuple[int, Plan, float, dict[str, list[int]]] | None = None
        self._model_at = 0  # committed ids the draft had caught up with when it last ran
        self._prompt_length = 0  # ids of the request's prompt
        self._costs: tuple[list[int], list[float]] | None = None  # the target's: sizes, seconds
        self._since_model = 0  # rounds since the model last proposed
        self._rounds = 0  # rounds since the prompt

    def prefill(self, committed: Sequence[int], warm: bool = True) -> None:
        self.lookup.prefill(committed, warm)
        # the draft reads the prompt the first time a plan needs it, a cost charged to that
        # plan: read now, it is wasted whenever lookup wins every round
        self.model.prefill(committed, warm=False)
        self._model_at, self._prompt_length = 0, len(committed)
        self._pending, self._since_model, self._rounds = None, 0, 0

    def propose(self, committed: Sequence[int], k: int, params: SamplingParams,
                draws: Draws) -> Proposal:
        started = time.perf_counter()
        self._learn(committed, started)
        if k < 1:
            return Proposal()
        trie = self.lookup.candidates(committed, k)  # costs well under a ms
        chain = trie.best_chain()
        self._rounds += 1
        tree = self.lookup.proposal(trie)  # a tree where the target verifies trees, as lookup's
        tree_size = len(tree.tokens) if tree.parents is not None else 0
        plan = self._plan(len(chain), k, len(committed), tree_size)
        self.chosen[plan.name] += 1
        # lookup's chain is scored every round, proposed or not: it costs nothing, and a
        # source scored only when chosen would not be chosen again after a few unlucky rounds
        chains = {"lookup": chain} if chain else {}
        self._pending = (len(committed), plan, started, chains)
        if plan.name in ("plain", "lookup"):
            self._since_model += 1
            if plan.name == "plain":
                return Proposal()
            return tree if tree_size else Proposal(chain[:plan.length])
        proposal = self._run_model(committed, plan.length, params, draws)
        if plan.name == "both" and proposal.laws is None and proposal.parents is None:
            drafted = list(proposal.tokens[:k])  # re-tokenized text may run past k
            chains["model"] = drafted
            both = Trie()
            both.add(chain)
            both.add(drafted)
            if len(both.tokens) == max(len(chain), len(drafted)):
                return Proposal(max(chain, drafted, key=len))  # one holds the other
            tokens, parents = both.top(len(both.tokens))
            return Proposal(tokens, None, parents)
        if proposal.parents is None:
            chains["model"] = list(proposal.tokens)
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

    def _learn(self, committed: Sequence[int], now: float) -> None:
        """Score last round's chains against what the target committed after them, and its
        plan's prediction against the tokens and seconds the round took."""
        if self._pending is None:
            return
        at, plan, started, chains = self._pending
        self._pending = None
        new = committed[at:]
        for calibration in self.calibration.values():
            calibration.fade()
        self.calibration[plan.name].observe(plan, len(new), now - started)
        for source, chain in chains.items():
            n_ok = common_prefix(chain, new)
            # all that was committed matches: whether the rest would have is not known
            self.sources[source].observe(n_ok, n_ok if n_ok == len(new) else len(chain))

    # --- the cost model ------------------------------------------------------------------
    def _target(self, n: int) -> float | None:
        if self._costs is None:
            return self.target.costs.estimate(n)
        return float(np.interp(n, *self._costs))

    def _fit_target_costs(self) -> None:
        """The target's measured pass costs made non-decreasing in the number of tokens (a
        size measured a few times is noisy, and interpolating between such sizes can make a
        larger pass look cheaper than a smaller one); None until two sizes are measured."""
        costs = self.target.costs
        sizes = sorted(costs.seconds)
        self._costs = None
        if len(sizes) >= 2:
            self._costs = (sizes, non_decreasing([costs.seconds[n] for n in sizes],
                                                 [costs.counts[n] for n in sizes]))

    def _warming_up(self) -> bool:
        return self.draft is not None and self.sources["model"].rounds < self.warmup_rounds

    def _catch_up(self, at: int) -> tuple[float, float]:
        """(seconds the draft needs to read the committed ids it has not seen, the part of
        them spent on the prompt): a prompt, read once for all the request's rounds, is
        charged in part to the plan that reads it (module docstring)."""
        behind = at - self._model_at
        if self.draft is None or behind <= 1:
            return 0.0, 0.0
        seconds = self.draft.costs.estimate(behind, scale_beyond=True) or 0.0
        return seconds, seconds * max(self._prompt_length - self._model_at, 0) / behind

    def _model_best(self, k: int, at: int, lookup_chain: int = 0) -> Plan | None:
        """The best model plan (`both`, with the lookup chain as a second branch, when
        lookup_chain > 0); None when it cannot be estimated yet."""
        step = self.draft.costs.estimate(1) if self.draft is not None else None
        if step is None:
            return None
        model, lookup = self.sources["model"], self.sources["lookup"]
        catch_up, prompt = self._catch_up(at)
        deferred = prompt * (1 - 1 / max(self._rounds, 1))
        best = None
        for steps in range(1, k + 1):
            verify = self._target(steps + lookup_chain + 1)
            if verify is None:
                break
            tokens = expected_tokens(model.acceptance, steps)
            if lookup_chain:
                tokens = both_expected_tokens(lookup.acceptance, lookup_chain,
                                              model.acceptance, steps)
            plan = Plan("both" if lookup_chain else "model", steps, tokens,
                        steps * step + verify + model.overhead + catch_up, deferred)
            if best is None or self._rate(plan) > self._rate(best):
                best = plan
        return best

    def _rate(self, plan: Plan) -> float:
        """Expected tokens per second, corrected by how the plan's rounds went."""
        if plan.seconds <= 0:
            return 0.0
        return plan.tokens / (plan.seconds - plan.deferred) * self.calibration[plan.name].gain

    def _plan(self, n_lookup: int, k: int, at: int, tree_size: int = 0) -> Plan:
        """The plan with the best score; n_lookup: the lookup chain's length (0: no match),
        tree_size: the size of lookup's tree (0: lookup proposes its chain, or a prefix)."""
        self._fit_target_costs()
        if self.draft is not None and self._warming_up() and not n_lookup:
            return Plan("model", min(4, k))
        plain = Plan("plain", 0, 1.0, self._target(1) or 0.0)
        plans = [plain]
        if n_lookup:
            acceptance = self.sources["lookup"].acceptance
            if self._target(n_lookup + 1) is None:
                return Plan("lookup", n_lookup)  # nothing measured yet: try it
            if tree_size:
                plans.append(Plan("lookup", n_lookup, expected_tokens(acceptance, n_lookup),
                                  self._target(tree_size + 1)))
            else:
                plans += [Plan("lookup", n, expected_tokens(acceptance, n), self._target(n + 1))
                          for n in range(1, n_lookup + 1)]
        if self.draft is not None:
            plans.append(self._model_best(k, at))
            if n_lookup and self.trees:
                plans.append(self._model_best(k, at, n_lookup))
        best = max((plan for plan in plans if plan is not None), key=self._rate)
        if best.name in ("plain", "lookup") and self.draft is not None \
                and self._since_model >= self.probe_every \
                and self._catch_up(at)[0] <= 0.1 * self._since_model * plain.seconds:
            return Plan("model", min(2, k))  # a probe: catching up costs at most a tenth of the wait
        return best


def both_expected_tokens(a_lookup: float, n_lookup: int, a_model: float, n_model: int) -> float:
    """Tokens a round commits on average when two chains are verified as one tree: the i-th
    token is accepted when either chain's first i are, taken as independent."""
    total = 1.0
    for i in range(1, max(n_lookup, n_model) + 1):
        miss_lookup = 1 - (a_lookup ** i if i <= n_lookup else 0.0)
        miss_model = 1 - (a_model ** i if i <= n_model else 0.0)
        total += 1 - miss_lookup * miss_model
    return total


def non_decreasing(values: Sequence[float], weights: Sequence[float]) -> list[float]:
    """The non-decreasing sequence closest to `values` in weighted least squares (isotonic
    regression by pooling adjacent violators: a value above the next is averaged with it)."""
    blocks: list[list[float]] = []  # [mean, weight, length]
    for value, weight in zip(values, weights):
        blocks.append([value, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            mean, w, n = blocks.pop()
            blocks[-1] = [(blocks[-1][0] * blocks[-1][1] + mean * w) / (blocks[-1][1] + w),
                          blocks[-1][1] + w, blocks[-1][2] + n]
    return [mean for mean, _, n in blocks for _ in range(int(n))]
