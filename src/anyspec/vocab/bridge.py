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
- `per_tokenizer`, `per_tokenizer_pair`: vocabulary-wide tables built once, not per request.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Callable, Sequence

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


_INVALID_UTF8 = re.compile("([\udc80-\udcff])")  # a byte that is no character's, escaped


def _parts(data: bytes) -> list[tuple[bytes, bool]]:
    """`data` cut into runs of valid UTF-8 and single stray bytes (in no character):
    (bytes, stray) in order."""
    pieces = _INVALID_UTF8.split(data.decode("utf-8", "surrogateescape"))
    return [(piece.encode("utf-8", "surrogateescape"), bool(i % 2)) for i, piece in enumerate(pieces)]


def encode_bytes(tokenizer, data: bytes, add_special: bool = False) -> list[int]:
    """Ids whose bytes are exactly `data`, which need not be valid UTF-8: a prompt of token
    ids, or a sampled output, may hold byte tokens that form no character. The text between
    such stray bytes is encoded as usual, and each stray byte is its own byte token (byte-level
    BPE and byte-fallback SentencePiece have one for every byte; where a vocabulary lacks one,
    `unspellable_end` says where the text it can spell begins)."""
    if _decodes(data) is not None:
        return tokenizer.encode(data.decode("utf-8"), add_special=add_special)
    by_bytes = per_tokenizer(tokenizer, ids_by_bytes)
    ids = tokenizer.encode("", add_special=True) if add_special else []
    for raw, stray in _parts(data):
        if stray:
            ids.append(by_bytes[raw])
        elif raw:
            ids += tokenizer.encode(raw.decode("utf-8"), add_special=False)
    return ids


def unspellable_end(tokenizer, data: bytes) -> int:
    """The offset just after the last stray byte of `data` (one in no UTF-8 character) that
    the vocabulary has no token for; 0 where there is none."""
    if _decodes(data) is not None:
        return 0
    by_bytes = per_tokenizer(tokenizer, ids_by_bytes)
    end = offset = 0
    for raw, stray in _parts(data):
        offset += len(raw)
        if stray and raw not in by_bytes:
            end = offset
    return end


def reencode_continuation(tokenizer, committed: Sequence[int], new: bytes,
                          window: int = 4) -> list[int]:
    """Target ids that continue `committed` with the bytes `new`.

    Encodes the last `window` committed tokens' text together with `new` and keeps what comes
    after them, so "Scal" + "ing" or "\\n" + "\\n" merge as the tokenizer would merge them. When
    the new text would change how committed text is tokenized (the window's ids do not come
    back unchanged), falls back to encoding `new` alone: still the right text, just not the
    canonical split. An unfinished UTF-8 character at the end of `new` is left out.
    """
    table = tokenizer.bytes_table()
    new = new[:len(new) - incomplete_utf8_tail(new)]
    if not new:
        return []
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
                 window: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.table = tokenizer.bytes_table()
        self.lookbehind = lookbehind
        self.window = window
        self._read(prompt)

    def _read(self, text: bytes) -> None:
        """Encode `text` afresh (its complete characters): the prompt, or the committed text
        when it holds a byte the draft's vocabulary cannot spell."""
        tokenizer, window = self.tokenizer, self.window
        complete = text[:len(text) - incomplete_utf8_tail(text)]
        # a stray byte the draft's vocabulary cannot spell: the draft reads what follows it
        self.start = unspellable_end(tokenizer, complete)
        ids = encode_bytes(tokenizer, complete[self.start:], add_special=True)
        if window is not None and len(ids) > window:
            bos = ids[:1] if ids[0] == tokenizer.bos_id else []
            self.start += len(tokenizer.decode_bytes(ids[:len(ids) - window]))
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
            if piece is None and unspellable_end(self.tokenizer, bytes(text[pos:end])):
                self._read(bytes(text))  # read on from after the byte
                return
            del self.ids[len(self.ids) - n_back:]
            if piece is None:  # the covered text ends inside a character, or holds a byte that
                # is none's: encoded as bytes from where the ids end
                self.ids.extend(encode_bytes(self.tokenizer, bytes(text[pos:end])))
            else:
                self.ids.extend(self.tokenizer.encode(piece, add_special=False))
            pos = end
        self.covered = pos

    def pending(self, text: bytes) -> bytes:
        """Committed bytes not yet covered by draft ids (at most an unfinished character)."""
        return text[self.covered:]


_PER_TOKENIZER: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def per_tokenizer(tokenizer, build: Callable):
    """build(tokenizer), computed once per tokenizer: a table over the whole vocabulary is not
    rebuilt for each proposer, and the server makes a proposer for every request."""
    built = _PER_TOKENIZER.setdefault(tokenizer, {})
    if build not in built:
        built[build] = build(tokenizer)
    return built[build]


def _by_second_tokenizer(tokenizer) -> weakref.WeakKeyDictionary:
    return weakref.WeakKeyDictionary()


def per_tokenizer_pair(draft_tokenizer, target_tokenizer, build: Callable):
    """build(draft_tokenizer, target_tokenizer), computed once per pair, as `per_tokenizer`
    does for one. What it builds must not hold either tokenizer (the keys are weak)."""
    built = per_tokenizer(target_tokenizer, _by_second_tokenizer).setdefault(draft_tokenizer, {})
    if build not in built:
        built[build] = build(draft_tokenizer, target_tokenizer)
    return built[build]


def leading_tokens(table: Sequence[bytes], ids: Sequence[int], n_bytes: int,
                   start: int = 0) -> tuple[int, int]:
    """The fewest ids from ids[start] on whose bytes reach n_bytes: (how many, their bytes'
    length, which is less than n_bytes where even all of them fall short)."""
    i, reached = start, 0
    while reached < n_bytes and i < len(ids):
        reached += len(table[ids[i]])
        i += 1
    return i - start, reached


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
    """For each draft id, the target id with exactly the same bytes, or -1 (TLI's intersection).
    Built once per pair of tokenizers and shared, so it is read-only."""
    return per_tokenizer_pair(draft_tokenizer, target_tokenizer, _shared_token_map)


def _shared_token_map(draft_tokenizer, target_tokenizer) -> np.ndarray:
    by_bytes = per_tokenizer(target_tokenizer, ids_by_bytes)
    to_target = np.array([by_bytes.get(b, -1) if b else -1
                          for b in draft_tokenizer.bytes_table()], dtype=np.int64)
    to_target.flags.writeable = False
    return to_target


def one_to_one(to_target: np.ndarray) -> bool:
    """Whether no two draft ids map to one target id (a `shared_token_map`)."""
    shared = to_target[to_target >= 0]
    return len(shared) == 0 or int(np.bincount(shared).max()) == 1
