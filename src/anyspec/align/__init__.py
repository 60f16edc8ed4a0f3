"""Token alignment between draft and target vocabularies (TokenTiming DTW)."""

from anyspec.align.dtw import (
    covered_draft_prefix,
    dtw_align,
    edit_distance,
    normalise_token_text,
    target_to_draft,
)

__all__ = [
    "covered_draft_prefix",
    "dtw_align",
    "edit_distance",
    "normalise_token_text",
    "target_to_draft",
]
