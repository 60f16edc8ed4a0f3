"""Running a draft model for k tokens, and standard speculative decoding (`sd`) on top of it.

`draft_chain` is shared by every draft-model method: greedy or sampled drafting, an optional
restriction to some draft ids (TLI), and Hugging Face's early stop when the draft is unsure.
`sd` proposes the draft's own ids to a target with the same vocabulary: at temperature 0 the
argmax as a point mass, otherwise a sample from p (processed with the target's temperature,
top-k and top-p) verified with min(1, q/p) (Leviathan et al. 2023).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import AnyspecError
from ..models.base import LanguageModel
from ..noise import Draws
from ..sampling import SamplingParams, target_probs
from ..verify.laws import DenseLaw
from .base import Draw, Proposal, draw_at
from .tree import TreeDrafting


@dataclass
class DraftRun:
    tokens: list[int] = field(default_factory=list)
    probs: list[np.ndarray] = field(default_factory=list)  # the p each token was sampled from
    confidence: list[float] = field(default_factory=list)  # p(token) under the draft (1.0 when
    # drafting greedily with no use for it)


def draft_chain(draft: LanguageModel, context: Sequence[int], k: int, params: SamplingParams,
                draw: Draw | None = None, stop_below: float | None = None,
                banned: np.ndarray | None = None, confidence: bool = False,
                stop_after_product: float | None = None) -> DraftRun:
    """Up to k draft tokens after `context` (draft ids).

    draw: sample step i's token from p with draw(p, i) (proposers/base.py); None: take the
    argmax.
    stop_below: stop before a step whose most likely token has a draft probability below this
    (at least one token is kept); decided before drawing, so a sampled draft stays lossless.
    banned: draft ids never to propose; p is renormalised over the others.
    confidence: fill run.confidence when drafting greedily even without stop_below (a softmax
    per step, skipped when nothing reads it).
    stop_after_product: stop after the token that brings the product of the drafted tokens'
    probabilities below this (implies confidence).
    """
    run = DraftRun()
    k = min(k, draft.n_ctx - len(context) + 1)  # the draft's context may be the smaller one
    confidence = confidence or stop_after_product is not None
    context = list(context)
    product = 1.0
    for _ in range(k):
        row = draft.logits(context + run.tokens)[0]  # a fresh array: masked in place
        if draw is not None:
            p = target_probs(row, params, in_place=True)
            if banned is not None:
                p[banned] = 0.0
                total = p.sum()
                if total <= 0:
                    break
                p /= total
            # the stop looks at the step's distribution, never at the token drawn from it:
            # keeping a draw only when it is likely would verify a token drawn from p
            # restricted to its likely tokens as if drawn from p, and bias the output
            if stop_below is not None and run.tokens and float(p.max()) < stop_below:
                break
            token = draw(p, len(run.tokens))
            p_token = float(p[token])
        else:  # the argmax and its probability only: no full distribution per step
            step = greedy_step(row, banned, confidence or stop_below is not None)
            if step is None:
                break
            token, p_token = step
            if stop_below is not None and run.tokens and p_token < stop_below:
                break  # greedy: the token is the step's most likely one
        run.tokens.append(token)
        run.confidence.append(p_token)
        if draw is not None:
            run.probs.append(p)
        if token in draft.tokenizer.eos_ids:
            break
        product *= p_token
        if stop_after_product is not None and product < stop_after_product:
            break
    return run


def greedy_step(row: np.ndarray, banned: np.ndarray | None,
                confidence: bool) -> tuple[int, float] | None:
    """The argmax of a logits row (masked in place) and its probability (1.0 unless
    `confidence`); None when every token is banned."""
    if banned is not None:
        row[banned] = -np.inf
    token = int(np.argmax(row))
    if not np.isfinite(row[token]):
        return None
    return token, top_probability(row, token) if confidence else 1.0


def greedy_chains(draft, contexts: dict, k: int, banned: np.ndarray | None = None,
                  stop_after_product: float | None = None) -> dict:
    """`draft_chain` at temperature 0 for many contexts at once: `draft.logits_many` runs
    one step of every chain still drafting in one pass (models/llamacpp.py's
    LlamaCppSequences). contexts: key -> draft ids; returns key -> DraftRun."""
    runs = {key: DraftRun() for key in contexts}
    product = dict.fromkeys(contexts, 1.0)
    active = [key for key, ids in contexts.items() if len(ids) <= draft.n_ctx]
    for _ in range(k):
        if not active:
            break
        rows = draft.logits_many({key: [*contexts[key], *runs[key].tokens] for key in active})
        still = []
        for key in active:
            step = None if rows.get(key) is None else greedy_step(
                rows[key], banned, stop_after_product is not None)
            if step is None:
                continue
            run = runs[key]
            run.tokens.append(step[0])
            run.confidence.append(step[1])
            product[key] *= step[1]
            ended = step[0] in draft.tokenizer.eos_ids or (
                stop_after_product is not None and product[key] < stop_after_product)
            if not ended and len(contexts[key]) + len(run.tokens) <= draft.n_ctx:
                still.append(key)
        active = still
    return runs


def top_probability(row: np.ndarray, token: int) -> float:
    """softmax(row)[token] for the row's maximum `token`."""
    return 1.0 / float(np.exp(row - row[token]).sum(dtype=np.float64))  # exp(0) = 1 over >= 1


class DraftChainProposer:
    name = "sd"

    def __init__(self, draft: LanguageModel, target: LanguageModel,
                 stop_below: float | None = None, tree_budget: int | None = None) -> None:
        check_same_vocabulary(draft, target)
        self.draft = draft
        self.stop_below = stop_below
        self.tree = TreeDrafting(tree_budget, target) if tree_budget else None  # else chains

    def prefill(self, committed: Sequence[int], warm: bool = True) -> None:
        if warm and 1 < len(committed) <= self.draft.n_ctx:
            self.draft.logits(list(committed)[:-1], n_last=1)
        if self.tree:
            self.tree.reset()

    def propose(self, committed: Sequence[int], k: int, params: SamplingParams,
                draws: Draws) -> Proposal:
        # the draft's ids are the target's: step i decides target position len(committed) + i
        draw = None if params.greedy else draw_at(draws.draft, len(committed))
        verified = draw is not None and not draws.coupled  # else point masses
        if self.tree:
            tree, _ = self.tree.grow(self.draft, committed, committed, k, params, draw)
            laws = [DenseLaw(p) for p in tree.probs] if verified else None
            return Proposal(tree.tokens, laws, tree.parents)
        run = draft_chain(self.draft, committed, k, params, draw, stop_below=self.stop_below)
        return Proposal(run.tokens, [DenseLaw(p) for p in run.probs] if verified else None)


def check_same_vocabulary(draft: LanguageModel, target: LanguageModel) -> None:
    """sd compares token ids directly, so both models must mean the same thing by each id."""
    d, t = draft.tokenizer, target.tokenizer
    probe = range(0, min(d.vocab_size, t.vocab_size), 97)  # a spread sample is enough to tell
    if d.vocab_size != t.vocab_size or any(d.token_bytes(i) != t.token_bytes(i) for i in probe):
        raise AnyspecError(
            f"method sd needs the draft and target to share one vocabulary, but {draft.name} "
            f"({d.vocab_size} tokens) and {target.name} ({t.vocab_size} tokens) differ; use a "
            "method made for different vocabularies (tokentiming, slem, tli, slrs) or a draft "
            "from the target's family"
        )
