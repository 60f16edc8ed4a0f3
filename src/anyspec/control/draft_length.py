"""Draft-length controllers. The engine asks `k()` before a round and reports `observe()` after.

- Fixed: always k.
- Adaptive: the heuristic transformers uses for assisted generation (+2 after a round where
  every draft token was accepted, -1 otherwise, never below 1): a known baseline.
- Cost-aware (the default, "auto"): picks the k that maximises expected tokens per second from
  measured costs, and k = 0 (plain decoding) when speculation does not pay.
"""

from __future__ import annotations

from ..errors import AnyspecError


class FixedDraftLength:
    def __init__(self, k: int) -> None:
        self._k = k

    def start(self, prompt_tokens: int, max_new_tokens: int | None = None) -> bool:
        return True  # it drafts from the first round: the draft should read the prompt now

    def k(self) -> int:
        return self._k

    def observe(self, drafted: int, accepted: int, draft_seconds: float = 0.0,
                other_seconds: float = 0.0, passes: int | None = None) -> None:
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
                other_seconds: float = 0.0, passes: int | None = None) -> None:
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

    k is a cap: a round may draft fewer tokens, since drafting stops early (EOS, the draft's
    confidence falling below --draft-stop-below or tokentiming's floor). The model of a round
    that asks for k:
    - after each drafted token, drafting stops with probability s, so the draft runs
      D = min(k, a geometric number) passes;
    - each pass yields rho target tokens on average (re-tokenizing changes the count), so the
      proposal is n = rho * D tokens long;
    - each proposed token is accepted with probability a (accepted / (accepted + rejections),
      the geometric model), so the round commits (1 - a^(n+1)) / (1 - a) tokens;
    - it takes D * draft_cost + target(n + 1) + overhead seconds, where target(n) is the
      target's measured cost of a pass over n tokens (not linear in n on a CPU).
    Expected tokens over expected seconds, averaged over D, is the rate; k = 0 is plain
    decoding, chosen when no k > 0 beats it. With no early stops (s = 0, rho = 1) this is the
    plain geometric model. Knowing s lets a long cap be cheap: most rounds stop short of it.

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
        self.stops, self.goes_on = 0.0, 1.0  # early stops and drafted tokens drafting went on
        # after; the prior s = 0 is the plain model until stops are seen
        self.proposed, self.passes = 1.0, 1.0  # target tokens proposed, draft passes: rho = 1
        self.draft_cost: float | None = None  # seconds of one draft pass
        self.overhead = {True: 0.0, False: 0.0}  # seconds outside the models, by k > 0
        self._warmup = [start, 0, start // 2]  # measure a few sizes before trusting the model
        self._since_draft = 0  # plain rounds since the draft last ran
        self._plain_prompt = False  # this prompt is decoded plainly (probes aside)
        self.behind = 0  # target tokens committed that the draft has not read
        self._k = start

    @property
    def acceptance(self) -> float:
        return self.accepted / (self.accepted + self.rejected)

    @property
    def stop_rate(self) -> float:
        """s: the chance that drafting stops after a drafted token, short of the cap."""
        return self.stops / (self.stops + self.goes_on)

    @property
    def tokens_per_pass(self) -> float:
        """rho: target tokens proposed per draft pass."""
        return self.proposed / self.passes

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
        outlooks = self.outlooks(k)
        (_, plain), (tokens, seconds) = outlooks[0], outlooks[k]
        return new_tokens * (plain - seconds / tokens)

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
        """A probe costs the draft's catch-up plus a 2-token round instead of a plain one."""
        if self.draft_costs is None:  # target only: nothing to probe
            return False
        catch_up = self.draft_costs.estimate(self.behind) if self.behind > 1 else 0.0
        plain, _, probe = self.outlooks(2)
        if catch_up is None or plain is None or probe is None:
            return True
        return catch_up + probe[1] - plain[1] <= self.probe_budget * self._since_draft * plain[1]

    def best_k(self) -> int:
        best_k, best_rate = 0, None
        for k, outlook in enumerate(self.outlooks(self.max_k)):
            if outlook is not None and (best_rate is None or outlook[0] / outlook[1] > best_rate):
                best_k, best_rate = k, outlook[0] / outlook[1]
        return best_k

    def outlooks(self, max_k: int) -> list[tuple[float, float] | None]:
        """[k]: (expected tokens committed, expected seconds) of a round that asks for k draft
        tokens, for k = 0..max_k; None where a cost it needs is not measured yet. One sweep:
        a cap of k is the rounds that stopped before k, plus the rest drafting k."""
        plain = self.target_costs.estimate(1)
        if plain is None:
            return [None] * (max_k + 1)
        out: list[tuple[float, float] | None] = [(1.0, plain + self.overhead[False])]
        if self.draft_cost is None:
            return out + [None] * max_k
        a, s, rho = min(self.acceptance, 0.999), self.stop_rate, self.tokens_per_pass
        verify: dict[int, float] = {}  # target seconds by proposal length
        stopped_tokens = stopped_seconds = 0.0  # summed over D < k, weighted by P(D)
        reach = 1.0  # P(D >= d)
        for d in range(1, max_k + 1):
            n = round(rho * d)
            if n not in verify:
                verify[n] = self.target_costs.estimate(n + 1)
            tokens = (1 - a ** (n + 1)) / (1 - a)
            seconds = d * self.draft_cost + verify[n]
            out.append((stopped_tokens + reach * tokens,
                        stopped_seconds + reach * seconds + self.overhead[True]))
            stopped_tokens += reach * s * tokens
            stopped_seconds += reach * s * seconds
            reach *= 1 - s
        return out

    def expected_round_seconds(self, k: int) -> float | None:
        outlook = self.outlooks(k)[k]
        return None if outlook is None else outlook[1]

    def observe(self, drafted: int, accepted: int, draft_seconds: float = 0.0,
                other_seconds: float = 0.0, passes: int | None = None) -> None:
        """drafted, accepted: target tokens proposed and accepted; passes: the draft's forward
        passes (None: unknown, taken as the k asked for)."""
        smooth = 0.2
        self.overhead[self._k > 0] += smooth * (other_seconds - self.overhead[self._k > 0])
        if self._k == 0:
            self._since_draft += 1
            self.behind += 1
            return
        caught_up = self.behind > 1  # this round's draft time includes reading the lag
        self._since_draft, self.behind = 0, 0
        self._plain_prompt = False  # the draft has read the prompt now: drafting costs no more
        counted = passes is not None
        passes = passes if counted else self._k
        if passes > 0 and not caught_up:
            per_pass = draft_seconds / passes
            self.draft_cost = per_pass if self.draft_cost is None else \
                self.draft_cost + smooth * (per_pass - self.draft_cost)
        # decay old evidence so the estimates follow the text (code drafts better than poetry)
        self.accepted = 0.95 * self.accepted + accepted
        self.rejected = 0.95 * self.rejected + (1 if accepted < drafted else 0)
        if counted and passes > 0:
            self.stops = 0.95 * self.stops + (1 if passes < self._k else 0)
            self.goes_on = 0.95 * self.goes_on + passes - 1
            self.proposed = 0.95 * self.proposed + drafted
            self.passes = 0.95 * self.passes + passes

    def describe(self) -> str:
        return "cost-aware (most expected tokens per second; 0 = plain decoding)"


DRAFT_LENGTHS = "auto (cost-aware, default), adaptive (Hugging Face's +2/-1), or an integer"


def draft_stop_below(given: float | None, draft_length: str | int) -> float | None:
    """The early-stop threshold for drafting: as given; else Hugging Face's
    assistant_confidence_threshold (0.4) when the length adapts, none for a fixed length."""
    if given is None and draft_length in ("auto", "adaptive", None):
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
