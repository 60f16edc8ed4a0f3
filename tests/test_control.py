"""Draft-length controllers: the cost-aware choice on constructed costs, and its fallback to
plain decoding when drafting does not pay."""

from types import SimpleNamespace

import pytest

from anyspec.control import (
    AdaptiveDraftLength,
    CostAwareDraftLength,
    draft_stop_below,
    make_controller,
)
from anyspec.errors import AnyspecError
from anyspec.models.base import ForwardCosts


def _models(target_seconds: dict[int, float], draft_seconds: float):
    target, draft = SimpleNamespace(costs=ForwardCosts()), SimpleNamespace(costs=ForwardCosts())
    for n, s in target_seconds.items():
        target.costs.record(n, s)
    draft.costs.record(1, draft_seconds)
    return target, draft


def _run(controller, rounds: int, accept_prob_per_token: float, draft_seconds_per_token: float):
    """Feed the controller rounds whose acceptance follows the geometric model exactly in
    expectation: every drafted token is accepted with the given rate (deterministic pattern)."""
    ks = []
    credit = 0.0
    for _ in range(rounds):
        k = controller.k()
        ks.append(k)
        accepted = 0
        for _ in range(k):
            credit += accept_prob_per_token
            if credit < 1:
                break
            credit -= 1
            accepted += 1
        controller.observe(k, accepted, k * draft_seconds_per_token, 0.0005)
    return ks


def test_cheap_draft_and_high_acceptance_drafts_long():
    # a GPU-like target: verifying 9 tokens costs little more than 1
    target, draft = _models({1: 0.020, 3: 0.021, 5: 0.022, 9: 0.024, 17: 0.030}, 0.002)
    controller = CostAwareDraftLength(target, draft)
    ks = _run(controller, 60, 0.95, 0.002)
    assert controller.acceptance > 0.85
    assert min(ks[-20:]) >= 6


def test_expensive_draft_falls_back_to_plain_decoding_and_keeps_probing():
    # a CPU-like target: each extra verified token costs more, and the draft is not cheap
    target, draft = _models({1: 0.025, 3: 0.040, 5: 0.050, 9: 0.066, 17: 0.12}, 0.015)
    draft.costs.record(32, 0.02)  # catching up a few dozen tokens is cheap
    controller = CostAwareDraftLength(target, draft, probe_every=16)
    ks = _run(controller, 100, 0.4, 0.015)
    tail = ks[-50:]
    assert tail.count(0) >= 45  # plain decoding almost always
    assert any(k > 0 for k in tail)  # but it still probes, to notice when drafting starts to pay


def test_the_choice_maximises_expected_tokens_per_second():
    target, draft = _models({1: 0.025, 3: 0.040, 5: 0.050, 9: 0.066, 17: 0.12}, 0.004)
    controller = CostAwareDraftLength(target, draft)
    _run(controller, 40, 0.8, 0.004)
    a = controller.acceptance

    def rate(k):
        return (1 - a ** (k + 1)) / (1 - a) / controller.expected_round_seconds(k)

    assert rate(controller.best_k()) == max(rate(k) for k in range(17))


def test_make_controller_names():
    target, draft = _models({1: 0.02}, 0.01)
    assert isinstance(make_controller("auto", target, draft), CostAwareDraftLength)
    assert isinstance(make_controller("adaptive"), AdaptiveDraftLength)
    assert make_controller("3").k() == 3
    for bad in ("0", "-2", "fast", 2.5j):
        with pytest.raises(AnyspecError, match="auto .cost-aware"):
            make_controller(bad)


def test_forward_costs_interpolate_between_measured_sizes():
    costs = ForwardCosts()
    assert costs.estimate(4) is None
    costs.record(1, 0.02)
    costs.record(9, 0.06)
    assert costs.estimate(5) == pytest.approx(0.04)
    assert costs.estimate(18) == pytest.approx(0.06)  # beyond the largest: optimistic, to try it


def test_forward_costs_drop_a_spike_and_follow_a_slower_machine():
    costs = ForwardCosts(window=4)
    costs.record(5, 1.5)  # a cold first pass
    costs.record(5, 0.05)
    assert costs.estimate(5) == pytest.approx(0.05)
    costs.record(5, 0.9)  # one preempted pass changes nothing
    assert costs.estimate(5) == pytest.approx(0.05)
    for _ in range(4):  # the machine got slower: within `window` passes the estimate follows
        costs.record(5, 0.08)
    assert costs.estimate(5) == pytest.approx(0.08)
    assert costs.counts[5] == 7


def test_a_pair_known_not_to_pay_skips_the_draft_and_probes_only_when_catching_up_is_cheap():
    target, draft = _models({1: 0.025, 3: 0.040, 5: 0.050, 9: 0.066, 17: 0.12}, 0.015)
    draft.costs.record(200, 0.3)  # reading many tokens at once: what a lazy draft catches up
    draft.costs.record(400, 0.45)
    controller = CostAwareDraftLength(target, draft, probe_every=16, probe_budget=0.1)
    assert controller.start(50)  # warm-up first: the draft reads the prompt
    _run(controller, 100, 0.4, 0.015)
    assert controller.best_k() == 0

    # the next prompt: the draft is not run on it, and falls behind as plain decoding goes on
    assert not controller.start(200)
    assert controller.behind == 200
    ks = [controller.k()]
    for _ in range(150):
        controller.observe(0, 0, 0.0, 0.0005)
        ks.append(controller.k())
    # catching up 200+ tokens costs 0.3 s or more: within 10% of plain decoding after ~190 rounds
    assert set(ks) == {0}
    for _ in range(150):
        controller.observe(0, 0, 0.0, 0.0005)
        ks.append(controller.k())
    assert 2 in ks[150:]  # then it probes


def test_a_catch_up_round_does_not_count_as_the_cost_of_drafting():
    target, draft = _models({1: 0.025, 3: 0.040, 5: 0.050}, 0.01)
    controller = CostAwareDraftLength(target, draft)
    controller.start(10)
    _run(controller, 10, 0.9, 0.01)
    cost = controller.draft_cost
    controller.behind = 300
    controller._k = 2
    controller.observe(2, 2, 1.0, 0.0005)  # 1 s: mostly reading 300 tokens
    assert controller.draft_cost == cost and controller.behind == 0


def test_a_long_prompt_is_read_by_the_draft_only_when_the_generation_repays_it():
    """Drafting pays per round here, but reading a 2000-token prompt costs the draft 2 s: worth
    it for 2000 new tokens, not for 20. A prompt decoded plainly still drafts after a probe."""
    target, draft = _models({1: 0.030, 3: 0.034, 5: 0.038, 9: 0.046}, 0.005)
    draft.costs.record(2000, 2.0)
    controller = CostAwareDraftLength(target, draft)
    controller.start(10, 64)
    _run(controller, 60, 0.9, 0.005)
    assert controller.best_k() > 0

    assert controller.start(2000, 2000)  # saves more than the 2 s of reading
    assert controller.k() > 0
    assert not controller.start(2000, 20)  # 20 tokens cannot repay 2 s
    assert controller.behind == 2000 and controller.k() == 0
    controller._k = 2  # a probe: the draft catches up, and the prompt is paid for
    controller.observe(2, 2, 2.0, 0.0005)
    assert controller.k() > 0
    assert controller.start(20, 20)  # a short prompt costs little to read


def test_the_per_token_stop_defaults_to_hugging_faces_only_where_the_length_adapts():
    assert draft_stop_below(None, "auto", "slem") == 0.4
    assert draft_stop_below(None, "adaptive") == 0.4
    assert draft_stop_below(None, 4, "slem") is None
    # tokentiming stops by its own confidence product: no second, per-token stop by default
    assert draft_stop_below(None, "auto", "tokentiming") is None
    assert draft_stop_below(0.3, "auto", "tokentiming") == 0.3


def test_a_prompt_longer_than_any_reading_measured_is_read_once_to_measure_it():
    """Before any long reading is measured, the controller cannot know that reading costs more
    than drafting saves: it reads (and so measures) rather than decoding plainly for good."""
    target, draft = _models({1: 0.030, 3: 0.034, 5: 0.038}, 0.005)
    controller = CostAwareDraftLength(target, draft)
    controller.start(10, 64)
    _run(controller, 60, 0.9, 0.005)
    assert controller.start(2000, 20)  # only small passes measured: try it
    draft.costs.record(1999, 2.0)  # the reading, as the draft's prefill records it
    assert not controller.start(2000, 20)  # now known: 20 tokens cannot repay 2 s


def test_one_cold_drafting_round_does_not_stick_to_the_draft_cost():
    target, draft = _models({1: 0.025, 3: 0.040, 5: 0.050}, 0.01)
    controller = CostAwareDraftLength(target, draft)
    controller.start(10)
    controller._k = 4
    controller.observe(4, 4, 4.0, 0.0005)  # a first round at 1 s per token: caches cold
    controller.observe(4, 4, 0.04, 0.0005)
    assert controller.draft_cost == pytest.approx(0.01)
