"""Proposers: each method's way of guessing the target's next tokens, one module each.

A proposer gets the committed target ids and a draft length and returns a Proposal: target
token ids, and for each the law it was drawn from (None: a deterministic choice, verified as
a point mass). The engine never needs to know which method it runs; `anyspec.config` builds
the proposer a method name asks for.

    draft_chain.py       running a draft for k tokens; `sd` (one shared vocabulary)
    retokenize.py        `slem` and `tokentiming`: draft text re-tokenized for the target
    intersection.py      `tli`: the draft restricted to the tokens both vocabularies share
    string_rejection.py  `slrs`: the law over target tokens of the draft's strings
    tree.py              DySpec token trees, for sd, tli, slem and tokentiming
    lookup.py            `lookup` and `suffix`: no draft model, continuations of earlier matches
    hybrid.py            `hybrid`: each round plain, lookup, the draft model or both as a tree
"""

from .base import NoProposer, Proposal, Proposer

__all__ = ["NoProposer", "Proposal", "Proposer"]
