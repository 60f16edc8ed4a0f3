"""Choosing how many tokens to draft each round."""

from .draft_length import (
                           DRAFT_LENGTHS,
                           AdaptiveDraftLength,
                           CostAwareDraftLength,
                           FixedDraftLength,
                           draft_stop_below,
                           make_controller,
)

__all__ = ["DRAFT_LENGTHS", "AdaptiveDraftLength", "CostAwareDraftLength", "FixedDraftLength", "draft_stop_below", "make_controller"]
