"""Standard speculative decoding (`sd`): a same-vocabulary draft model proposes a chain.

At temperature 0 the draft's argmax is proposed and verified as a point mass. Otherwise each
token is sampled from the draft's distribution p, processed with the same temperature, top-k
and top-p as the target, and verified with min(1, q/p) (Leviathan et al. 2023).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import AnyspecError
from ..models.base import LanguageModel
from ..sampling import SamplingParams, sample, target_probs
from . import Proposal


class DraftChainProposer:
    name = "sd"

    def __init__(self, draft: LanguageModel, target: LanguageModel) -> None:
        check_same_vocabulary(draft, target)
        self.draft = draft

    def prefill(self, committed: Sequence[int]) -> None:
        if 1 < len(committed) <= self.draft.n_ctx:
            self.draft.logits(list(committed)[:-1], n_last=1)

    def propose(self, committed: Sequence[int], k: int, params: SamplingParams,
                rng: np.random.Generator) -> Proposal:
        k = min(k, self.draft.n_ctx - len(committed) + 1)  # the draft's context may be the smaller
        tokens: list[int] = []
        probs: list[np.ndarray] = []
        for _ in range(k):
            # the draft's cache keeps whatever prefix still matches; no bookkeeping here
            row = self.draft.logits(list(committed) + tokens, n_last=1)[0]
            if params.greedy:
                tokens.append(int(np.argmax(row)))
            else:
                p = target_probs(row, params)
                probs.append(p)
                tokens.append(sample(p, rng))
        return Proposal(tokens, None if params.greedy else probs)


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
