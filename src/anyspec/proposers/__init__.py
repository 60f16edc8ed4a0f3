"""Proposers: each method's way of guessing the target's next tokens.

A proposer gets the committed target ids and a draft length and returns a Proposal: target
token ids, and for each the distribution it was sampled from (None means a deterministic
choice, verified as a point mass). The engine never needs to know which method it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, Sequence

import numpy as np

from ..sampling import SamplingParams


@dataclass
class Proposal:
    tokens: list[int] = field(default_factory=list)
    # one row per token, over the target vocabulary (an array, or indexable by id and made one
    # by np.asarray, optionally with residual_of(q) = max(0, q - row) without the whole row);
    # None: every token is a point mass
    draft_probs: Sequence[np.ndarray] | None = None
    # a tree: parents[i] is token i's parent (-1: follows the committed ids); None: a chain
    parents: list[int] | None = None


class Proposer(Protocol):
    name: str

    def prefill(self, committed: Sequence[int], warm: bool = True) -> None:
        """A new prompt. warm: the draft reads it now, so rounds time decoding only; else the
        draft reads it the first time it drafts (never, if plain decoding is all it takes)."""
        ...

    def propose(self, committed: Sequence[int], k: int, params: SamplingParams,
                rng: np.random.Generator) -> Proposal:
        """Up to k target tokens that may follow `committed`."""
        ...


class NoProposer:
    """Target-only decoding (`ar`): every round is one plain decoding step."""

    name = "ar"
    draft = None

    def prefill(self, committed, warm: bool = True) -> None:
        pass

    def propose(self, committed, k, params, rng) -> Proposal:
        return Proposal()


# method name -> (needs a draft, what it is); the CLI's --help is built from this table
METHODS = {
    "ar": (False, "target only, one token per pass (the baseline)"),
    "sd": (True, "standard speculative decoding; draft and target share a vocabulary"),
    "slem": (True, "any vocabularies: draft text re-tokenized for the target, exact match"),
    "tokentiming": (True, "as slem, plus DTW alignment carrying draft confidence to target tokens"),
    "tli": (True, "any vocabularies: draft restricted to tokens both vocabularies share"),
    "slrs": (True, "any vocabularies: string-level rejection sampling over the draft's "
                   "segmentations of each target token (more draft passes, higher acceptance "
                   "when sampling; greedy, it proposes as slem)"),
}
CROSS_VOCABULARY = ("tokentiming", "slem", "tli", "slrs")
TREE_METHODS = ("sd", "tli", "slem", "tokentiming")  # slrs draws strings: chains only


def resolve_method(method: str, target, draft) -> str:
    """auto: sd when draft and target share a vocabulary, else tokentiming; no draft: ar."""
    if method != "auto":
        return method
    if draft is None:
        return "ar"
    from ..errors import AnyspecError
    from .draft_chain import check_same_vocabulary

    try:
        check_same_vocabulary(draft, target)
        return "sd"
    except AnyspecError:
        return "tokentiming"


def check_draft_window(draft_window: int | None) -> None:
    from ..errors import AnyspecError

    if draft_window is not None and draft_window < 1:
        raise AnyspecError(f"the draft window must be at least 1 token, got {draft_window}")


def parse_tree_budget(value: str | int | None) -> int | str | None:
    """--tree: None (chains), "auto" (sized by measured costs) or a number of tokens."""
    from ..errors import AnyspecError

    if value is None or value == "auto":
        return value
    try:
        budget = int(value)
    except (TypeError, ValueError):
        budget = 0
    if budget < 1 or isinstance(value, float):
        raise AnyspecError(f"--tree must be auto or a number of tokens >= 1, got {value!r}")
    return budget


def check_tree_budget(tree_budget: int | str | None,
                      method: str | None = None) -> int | str | None:
    """The parsed budget, after checking that `method` (None: any) can draft trees."""
    from ..errors import AnyspecError

    if tree_budget is None:
        return None
    budget = parse_tree_budget(tree_budget)
    if method is not None and method not in TREE_METHODS:
        raise AnyspecError(
            f"--tree works with {', '.join(TREE_METHODS)}; {method} drafts chains only")
    return budget


def make_proposer(method: str, target, draft=None, stop_below: float | None = None,
                  sampled_drafting: bool = False, band: int = 8,
                  min_confidence: float = 0.05, draft_window: int | None = None,
                  tree_budget: int | None = None) -> Proposer:
    """The proposer for `method`; the checks say what to change when the pair does not fit.

    draft_window: the draft reads at most this many of its tokens of a prompt, from the end
    (cross-vocabulary methods; None reads it all).
    tree_budget: draft a DySpec tree per round instead of a chain (TREE_METHODS): this many tokens,
    or "auto": grown while the measured costs say it pays. The draft length bounds its depth."""
    from ..errors import AnyspecError

    if method not in METHODS:
        raise AnyspecError(f"unknown method '{method}': choose one of {', '.join(METHODS)}")
    check_draft_window(draft_window)
    if draft_window is not None and method == "sd":
        raise AnyspecError("a draft window applies to the cross-vocabulary methods "
                           f"({', '.join(CROSS_VOCABULARY)}); sd's draft reads the target's ids")
    tree_budget = check_tree_budget(tree_budget, method)
    if METHODS[method][0] and draft is None:
        raise AnyspecError(f"method {method} needs a draft model (--draft)")
    if method == "ar":
        return NoProposer()
    if tree_budget is not None and not target.supports_trees:
        raise AnyspecError(target.no_trees_message())
    if method == "sd":
        from .draft_chain import DraftChainProposer

        return DraftChainProposer(draft, target, stop_below, tree_budget)
    if method == "tli":
        from .intersection import IntersectionProposer

        return IntersectionProposer(draft, target, stop_below, draft_window=draft_window,
                                    tree_budget=tree_budget)
    if method == "slrs":
        from .string_rejection import StringRejectionProposer

        return StringRejectionProposer(draft, target, stop_below, draft_window=draft_window)
    from .retokenize import RetokenizingProposer

    return RetokenizingProposer(draft, target, method, sampled_drafting, stop_below, band,
                                min_confidence, draft_window=draft_window,
                                tree_budget=tree_budget)
