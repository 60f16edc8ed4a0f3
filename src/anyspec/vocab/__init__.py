"""Bridging two tokenizers: exact token bytes, re-encoding with look-behind, shared tokens."""

from .bridge import (DraftText, SpaceWords, ids_by_bytes, incomplete_utf8_tail,
                     leading_tokens, per_tokenizer, reencode_continuation, shared_token_map,
                     space_words)

__all__ = ["DraftText", "SpaceWords", "ids_by_bytes", "incomplete_utf8_tail", "leading_tokens",
           "per_tokenizer", "reencode_continuation", "shared_token_map", "space_words"]
