"""Moving text between two tokenizers without losing or inventing a byte.

All comparisons are on exact token bytes (models/base.py Tokenizer.bytes_table), so a token that
holds part of a multi-byte UTF-8 character is compared as bytes, never as U+FFFD, and the space
markers of SentencePiece and byte-level BPE are already gone.

- `reencode_continuation`: the target tokens for new text that follows the committed target
  ids, re-encoding a look-behind window so merges across the boundary come out as the target
  tokenizer would make them.
- `DraftText`: the draft's ids for (a prefix of) the committed text, kept in step after every
  round with the smallest re-encoding that is correct.
- `shared_token_map`: draft id -> target id with the same bytes (TLI's vocabulary intersection).
- `SpaceWords`: text made of whole words, spelt one token per word without a tokenizer call.
"""

from __future__ import annotations

import re
import weakref
from typing import Callable, Sequence

import numpy as np


def incomplete_utf8_tail(data: bytes) -> int:
    """How many bytes at the end of `data` start a UTF-8 character that is not finished."""
    for back in range(1, min(4, len(data)) + 1):
        b = data[-back]
        if b & 0xC0 != 0x80:  # not a continuation byte: the last character starts here
            need = 2 if b & 0xE0 == 0xC0 else 3 if b & 0xF0 == 0xE0 else 4 if b & 0xF8 == 0xF0 else 1
            return back if need > back else 0
    return 0


def _decodes(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def reencode_continuation(tokenizer, committed: Sequence[int], new: bytes,
                          window: int = 4, words: SpaceWords | None = None) -> list[int]:
    """Target ids that continue `committed` with the bytes `new`.

    Encodes the last `window` committed tokens' text together with `new` and keeps what comes
    after them, so "Scal" + "ing" or "\\n" + "\\n" merge as the tokenizer would merge them. When
    the new text would change how committed text is tokenized (the window's ids do not come
    back unchanged), falls back to encoding `new` alone: still the right text, just not the
    canonical split. An unfinished UTF-8 character at the end of `new` is left out.
    words: the tokenizer's `space_words`, which spell whole words with no tokenizer call.
    """
    table = tokenizer.bytes_table()
    new = new[:len(new) - incomplete_utf8_tail(new)]
    if not new:
        return []
    if words is not None and committed:
        spelt = words.spell(table[committed[-1]][-1:], new)
        if spelt is not None:
            return spelt
    start = len(committed)
    while start > 0 and len(committed) - start < window and table[committed[start - 1]]:
        start -= 1  # control tokens (BOS, turn markers) have no text: the window stops there
    while start < len(committed):  # the window must begin on a character boundary
        text = _decodes(tokenizer.decode_bytes(committed[start:]) + new)
        if text is not None:
            break
        start += 1
    else:
        text = _decodes(new)
    if text is None:  # `new` begins inside a character that committed text started
        return []
    ids = tokenizer.encode(text, add_special=False)
    head = list(committed[start:])
    if ids[:len(head)] == head:
        return ids[len(head):]
    alone = _decodes(new)
    return tokenizer.encode(alone, add_special=False) if alone else []


class DraftText:
    """The draft's token ids for a prefix of the committed text, and how many bytes they cover.

    Invariant: decode_bytes(ids) == committed text[start:covered]. The draft's cache follows
    `ids` by prefix matching (models/base.py), so keeping `ids` right keeps the cache right: it
    never holds text the target did not commit.

    window: read at most this many draft tokens of the prompt, its end (plus the BOS token):
    a long prompt then costs the draft a bounded prefill. start is where they begin.
    """

    def __init__(self, tokenizer, prompt: bytes, lookbehind: int = 4,
                 words: SpaceWords | None = None, window: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.table = tokenizer.bytes_table()
        self.lookbehind = lookbehind
        self.words = words  # whole words without a tokenizer call (the usual remainder)
        complete = prompt[:len(prompt) - incomplete_utf8_tail(prompt)]
        ids = tokenizer.encode(complete.decode("utf-8"), add_special=True)
        self.start = 0
        if window is not None and len(ids) > window:
            bos = ids[:1] if ids[0] == tokenizer.bos_id else []
            self.start = len(tokenizer.decode_bytes(ids[:len(ids) - window]))
            ids = bos + ids[len(ids) - window:]
        self.ids: list[int] = ids
        self.covered = self.start + len(tokenizer.decode_bytes(ids))

    def sync(self, text: bytes, drafted: Sequence[int] = ()) -> None:
        """Catch up with the committed `text` (which extends the text already covered).

        First keeps the drafted tokens the committed text confirms (their keys and values are
        already in the draft's cache), then encodes the rest together with a few draft tokens
        before it, so a word split between the draft and the target's correction is re-merged.
        """
        pos = self.covered
        for d in drafted:
            b = self.table[d]
            if not b or text[pos:pos + len(b)] != b:
                break
            self.ids.append(d)
            pos += len(b)
        rest = text[pos:]
        end = pos + len(rest) - incomplete_utf8_tail(rest)
        spelt = self.words.spell(text[pos - 1:pos], bytes(text[pos:end])) if self.words else None
        if spelt is not None:
            self.ids.extend(spelt)
            pos = end
        if end > pos:
            n_back = 0  # never past a control token (BOS, turn markers): it has no text
            while n_back < min(self.lookbehind, len(self.ids)) and self.table[self.ids[-1 - n_back]]:
                n_back += 1
            while True:
                start = pos - sum(len(self.table[i]) for i in self.ids[len(self.ids) - n_back:])
                piece = _decodes(text[start:end])
                if piece is not None or n_back == 0:
                    break
                n_back -= 1  # the look-behind began inside a character: take one token less
            if piece is None:  # the covered text itself ends inside a character
                piece = text[pos:end].decode("utf-8", errors="strict")
                start = pos
            del self.ids[len(self.ids) - n_back:]
            self.ids.extend(self.tokenizer.encode(piece, add_special=False))
            pos = end
        self.covered = pos

    def pending(self, text: bytes) -> bytes:
        """Committed bytes not yet covered by draft ids (at most an unfinished character)."""
        return text[self.covered:]


_PER_TOKENIZER: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def per_tokenizer(tokenizer, build: Callable):
    """build(tokenizer), computed once per tokenizer: tables over a 262k vocabulary take a
    fraction of a second, and the server makes a proposer for every request."""
    built = _PER_TOKENIZER.setdefault(tokenizer, {})
    if build not in built:
        built[build] = build(tokenizer)
    return built[build]


# a token holding a non-space, then a space that a letter or the token's end follows: it could
# span the boundary between two of SpaceWords' pieces ("a▁the", "e "); "> </" could not
_SPANS_A_WORD_BOUNDARY = re.compile(rb"[^\s] (?:[A-Za-z]|$)")
_WORDS = re.compile(rb"(?: [A-Za-z]+)+")


class SpaceWords:
    """Text made of whole words (a space and ASCII letters each) after a non-space, spelt as
    one token per word without calling the tokenizer: a call costs ~200 us right after a
    forward pass (cold caches), and such text is most of what a draft writes.

    Exact, not a guess: `space_words` builds one only for a vocabulary where no token could
    span the boundary before a word, so BPE, SentencePiece and Unigram all split such text word
    by word; and each word is checked with the tokenizer, after a letter, the first time it is
    spelt (a vocabulary can hold a word its merges never reach).
    """

    def __init__(self, tokenizer, tokens: dict[bytes, int]) -> None:
        self.tokenizer = tokenizer
        self.tokens = tokens  # " word" -> its id, not yet checked
        self.checked: dict[bytes, bool] = {}

    def spell(self, before: bytes, text: bytes) -> list[int] | None:
        """The tokenizer's ids for `text` following the byte `before`, or None when `text` is
        not whole words after a non-space, or holds a word that is not one token."""
        if not before or before.isspace() or not _WORDS.fullmatch(text):
            return None
        ids = []
        for piece in text.split(b" ")[1:]:
            word = b" " + piece
            token = self.tokens.get(word)
            if token is None or not self._encodes_alone(word, token):
                return None
            ids.append(token)
        return ids

    def _encodes_alone(self, word: bytes, token: int) -> bool:
        ok = self.checked.get(word)
        if ok is None:
            ok = self.tokenizer.encode("a" + word.decode(), add_special=False)[-1:] == [token]
            self.checked[word] = ok
        return ok


def space_words(tokenizer) -> SpaceWords | None:
    """The tokenizer's SpaceWords, or None if a token could span a word boundary or no token
    is a whole word. Build it through `per_tokenizer`: it scans the vocabulary."""
    table = tokenizer.bytes_table()
    if any(_SPANS_A_WORD_BOUNDARY.search(b) for b in table):
        return None
    tokens = {b: i for i, b in enumerate(table) if _WORDS.fullmatch(b) and b.count(b" ") == 1}
    return SpaceWords(tokenizer, tokens) if tokens else None


def ids_by_bytes(tokenizer) -> dict[bytes, int]:
    """Each non-empty token text -> the id the tokenizer itself produces for it. Shared through
    `per_tokenizer` by `shared_token_map` and slrs: read it, do not change it.

    Where several ids share the bytes (a byte-fallback <0x41> and a normal "A"), the normal
    token wins: it is the one the tokenizer's encode produces.
    """
    table = tokenizer.bytes_table()
    by_bytes: dict[bytes, int] = {}
    duplicated = set()
    for i, b in enumerate(table):
        if b:
            if b in by_bytes:
                duplicated.add(b)
            else:
                by_bytes[b] = i
    for b in duplicated:
        text = _decodes(b)
        ids = tokenizer.encode(text, add_special=False) if text else []
        if len(ids) == 1 and table[ids[0]] == b:
            by_bytes[b] = ids[0]
    return by_bytes


def shared_token_map(draft_tokenizer, target_tokenizer) -> np.ndarray:
    """For each draft id, the target id with exactly the same bytes, or -1 (TLI's intersection)."""
    by_bytes = per_tokenizer(target_tokenizer, ids_by_bytes)
    return np.array([by_bytes.get(b, -1) if b else -1 for b in draft_tokenizer.bytes_table()],
                    dtype=np.int64)
