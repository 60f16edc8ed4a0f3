"""Choosing how many tokens to draft each round."""

from .draft_length import AdaptiveDraftLength, FixedDraftLength, make_controller

__all__ = ["AdaptiveDraftLength", "FixedDraftLength", "make_controller"]
