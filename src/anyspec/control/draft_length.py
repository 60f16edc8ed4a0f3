"""Draft-length controllers. The engine asks `k()` before a round and reports `observe()` after.

- Fixed: always k.
- Adaptive: the heuristic transformers uses for assisted generation (+2 after a round where
  every draft token was accepted, -1 otherwise, never below 1): a known baseline.
- Cost-aware (the default, "auto"): picks the k that maximises expected tokens per second from
  measured costs, and k = 0 (plain decoding) when speculation does not pay.
"""

from __future__ import annotations

from ..errors import AnyspecError
from ..models.base import ForwardCosts


def expected_tokens(acceptance: float, k: int) -> float:
    """Tokens a round that verifies k drafted tokens commits on average, when each is
    accepted with probability `acceptance` given the ones before it (the geometric model):
    1 + a + a^2 + ... + a^k."""
    a = min(acceptance, 0.999)
    return (1 - a ** (k + 1)) / (1 - a)


class FixedDraftLength:
    def __init__(self, k: int) -> None:
        self._k = k

    def start(self, prompt_tokens: int, max_new_tokens: int | None = None) -> bool:
        return True  # it drafts from the first round: the draft should read the prompt now

    def k(self) -> int:
        return self._k

    def observe(self, drafted: int, accepted: int, draft_seconds: float = 0.0,
                other_seconds: float = 0.0) -> None:
        pass

    def describe(self) -> str:
        return f"fixed k={self._k}"


class AdaptiveDraftLength:
    def __init__(self, start: int = 4, max_k: int = 16) -> None:
        self._k = start
        self.max_k = max_k

    def start(self, prompt_tokens: int, max_new_tokens: int | None = None) -> bool:
        return True  # it drafts from the first round: the draft should read the prompt now

    def k(self) -> int:
        return self._k

    def observe(self, drafted: int, accepted: int, draft_seconds: float = 0.0,
                other_seconds: float = 0.0) -> None:
        if drafted == 0:
            return
        if accepted == drafted:
            self._k = min(self._k + 2, self.max_k)
        else:
            self._k = max(1, self._k - 1)

    def describe(self) -> str:
        return "adaptive (+2 when all accepted, else -1)"


class CostAwareDraftLength:
    """The draft length with the most expected tokens per second, from measured costs.

    With acceptance treated as a per-token probability a (estimated as accepted / (accepted +
    rejections), the geometric model), a round that drafts k tokens commits on average
    E(k) = (1 - a^(k+1)) / (1 - a) tokens and takes T(k) = k * draft_cost + target(k+1) +
    overhead, where target(n) is the target's measured cost of a pass over n tokens (not
    linear in n on a CPU). k = 0 is plain decoding: chosen when no k > 0 beats it.

    Plain decoding should then cost nothing extra, so the draft is not run while k = 0: it
    does not read a prompt it will not draft after (`start` says so), and it falls behind the
    text. To notice when drafting starts to pay, it probes (drafts 2 tokens) after
    `probe_every` plain rounds, but only once the probe, catching the draft up included, costs
    at most `probe_budget` of the time decoded plainly since it last drafted. One controller serves a
    generator's successive prompts, so what it learnt about the pair carries over.
    """

    def __init__(self, target, draft, max_k: int = 16, start: int = 4,
                 probe_every: int = 16, probe_budget: float = 0.1) -> None:
        self.target_costs = target.costs
        self.draft_costs = draft.costs if draft is not None else None
        self.max_k = max_k
        self.probe_every = probe_every
        self.probe_budget = probe_budget
        self.accepted, self.rejected = 1.0, 1.0  # a weak prior: a = 0.5
        # seconds of drafting per unit of k, kept as a one-size ForwardCosts: a cold round drops
        self._draft_per_k = ForwardCosts()
        self.overhead = {True: 0.0, False: 0.0}  # seconds outside the models, by k > 0
        self._warmup = [start, 0, start // 2]  # measure a few sizes before trusting the model
        self._since_draft = 0  # plain rounds since the draft last ran
        self._plain_prompt = False  # this prompt is decoded plainly (probes aside)
        self.behind = 0  # target tokens committed that the draft has not read
        self._k = start

    @property
    def draft_cost(self) -> float | None:
        """Seconds of drafting per unit of k (None before the draft has run)."""
        return self._draft_per_k.estimate(1)

    @property
    def acceptance(self) -> float:
        return self.accepted / (self.accepted + self.rejected)

    def start(self, prompt_tokens: int, max_new_tokens: int | None = None) -> bool:
        """A new prompt. True: the draft should read it now, since it drafts soon.

        Drafting must pay for the draft's reading of the prompt too: when the time it saves
        over max_new_tokens is less than that reading costs, this prompt is decoded plainly
        (probes still run when they are cheap)."""
        self._since_draft = 0
        self._plain_prompt = False
        if self._warmup:
            self.behind = 0
            return True
        k = self.best_k()
        if k > 0 and self._saving(k, max_new_tokens) >= self._reading(prompt_tokens):
            self.behind = 0
            return True
        self._plain_prompt = True
        self.behind = prompt_tokens
        return False

    def _saving(self, k: int, new_tokens: int | None) -> float:
        """Seconds drafting k tokens per round saves over plain decoding for new_tokens tokens."""
        if new_tokens is None:
            return float("inf")
        per_token = self.expected_round_seconds(k) / expected_tokens(self.acceptance, k)
        return new_tokens * (self.expected_round_seconds(0) - per_token)

    def _reading(self, prompt_tokens: int) -> float:
        """Seconds the draft takes to read a prompt this long (0 before any measurement)."""
        estimate = self.draft_costs.estimate(prompt_tokens) if self.draft_costs else None
        return estimate or 0.0

    def k(self) -> int:
        if self._warmup:
            self._k = self._warmup.pop(0)
        else:
            self._k = 0 if self._plain_prompt else self.best_k()
            if self._k == 0 and self._since_draft >= self.probe_every and self._probe_is_cheap():
                self._k = 2
        return self._k

    def _probe_is_cheap(self) -> bool:
        """A probe costs the draft's catch-up plus a 2-token round instead of a plain one
        (no catch-up for a proposer with no draft model: lookup)."""
        catch_up = 0.0
        if self.draft_costs is not None and self.behind > 1:
            catch_up = self.draft_costs.estimate(self.behind)
        plain, probe = self.expected_round_seconds(0), self.expected_round_seconds(2)
        if catch_up is None or plain is None or probe is None:
            return True
        return catch_up + probe - plain <= self.probe_budget * self._since_draft * plain

    def best_k(self) -> int:
        best_k, best_rate = 0, None
        for k in range(self.max_k + 1):
            seconds = self.expected_round_seconds(k)
            if seconds is None:
                continue
            rate = expected_tokens(self.acceptance, k) / seconds
            if best_rate is None or rate > best_rate:
                best_k, best_rate = k, rate
        return best_k

    def expected_round_seconds(self, k: int) -> float | None:
        verify = self.target_costs.estimate(k + 1)
        if verify is None or (k > 0 and self.draft_cost is None):
            return None
        return (k * self.draft_cost if k else 0.0) + verify + self.overhead[k > 0]

    def observe(self, drafted: int, accepted: int, draft_seconds: float = 0.0,
                other_seconds: float = 0.0) -> None:
        smooth = 0.2
        self.overhead[self._k > 0] += smooth * (other_seconds - self.overhead[self._k > 0])
        if self._k == 0:
            self._since_draft += 1
            self.behind += 1
            return
        caught_up = self.behind > 1  # this round's draft time includes reading the lag
        self._since_draft, self.behind = 0, 0
        self._plain_prompt = False  # the draft has read the prompt now: drafting costs no more
        if not caught_up:
            self._draft_per_k.record(1, draft_seconds / self._k)
        # decay old evidence so the estimate follows the text (code drafts better than poetry)
        self.accepted = 0.95 * self.accepted + accepted
        self.rejected = 0.95 * self.rejected + (1 if accepted < drafted else 0)

    def describe(self) -> str:
        return "cost-aware (most expected tokens per second; 0 = plain decoding)"


DRAFT_LENGTHS = "auto (cost-aware, default), adaptive (Hugging Face's +2/-1), or an integer"


def draft_stop_below(given: float | None, draft_length: str | int,
                     method: str | None = None) -> float | None:
    """The early-stop threshold for drafting: as given; else Hugging Face's
    assistant_confidence_threshold (0.4) when the length adapts, none for a fixed length.

    tokentiming has its own stop (the product of the draft's probabilities, min_confidence),
    which cuts where its proxies would be cut; a per-token stop on top only shortens drafts
    that would be accepted (MAT 4.1 against 6.1 on the transformers pair)."""
    if given is None and draft_length in ("auto", "adaptive", None) and method != "tokentiming":
        return 0.4
    return given


def make_controller(draft_length: str | int, target=None, draft=None):
    """'auto' -> cost-aware (needs the models), 'adaptive' -> +2/-1, an integer -> fixed."""
    if draft_length in ("auto", None):
        return CostAwareDraftLength(target, draft) if target is not None else AdaptiveDraftLength()
    if draft_length == "adaptive":
        return AdaptiveDraftLength()
    try:
        k = int(draft_length)
    except (TypeError, ValueError):
        raise AnyspecError(f"draft length must be {DRAFT_LENGTHS}; got {draft_length!r}") from None
    if k < 1:
        raise AnyspecError(f"draft length must be {DRAFT_LENGTHS}; got {k}")
    return FixedDraftLength(k)
