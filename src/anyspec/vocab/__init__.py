"""Bridging two tokenizers: exact token bytes, re-encoding with look-behind, shared tokens."""

from .bridge import (
    DraftText,
    ids_by_bytes,
    incomplete_utf8_tail,
    leading_tokens,
    one_to_one,
    per_tokenizer,
    per_tokenizer_pair,
    reencode_continuation,
    shared_token_map,
)

__all__ = ["DraftText", "ids_by_bytes", "incomplete_utf8_tail", "leading_tokens", "one_to_one",
           "per_tokenizer", "per_tokenizer_pair", "reencode_continuation", "shared_token_map"]
