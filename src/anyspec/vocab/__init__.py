"""Bridging two tokenizers: exact token bytes, re-encoding with look-behind, shared tokens."""

from .bridge import DraftText, incomplete_utf8_tail, reencode_continuation, shared_token_map

__all__ = ["DraftText", "incomplete_utf8_tail", "reencode_continuation", "shared_token_map"]
