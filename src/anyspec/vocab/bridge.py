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
- `SpaceWords`: common text (words, punctuation after a word, new lines) spelt without a
  tokenizer call.
"""

from __future__ import annotations

import itertools
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
                          window: int = 4, words: SpaceWords | None = None) -> list[int]:
    """Target ids that continue `committed` with the bytes `new`.

    Encodes the last `window` committed tokens' text together with `new` and keeps what comes
    after them, so "Scal" + "ing" or "\\n" + "\\n" merge as the tokenizer would merge them. When
    the new text would change how committed text is tokenized (the window's ids do not come
    back unchanged), falls back to encoding `new` alone: still the right text, just not the
    canonical split. An unfinished UTF-8 character at the end of `new` is left out.
    words: the tokenizer's `space_words`: text it has learned is spelt with no tokenizer call.
    """
    table = tokenizer.bytes_table()
    new = new[:len(new) - incomplete_utf8_tail(new)]
    if not new:
        return []
    before = text_before(table, committed) if words is not None else b""
    if before:
        spelt = words.spell(before, new)
        if spelt is not None:
            return spelt
    start = len(committed)
    if not (before and words.splits_a_run(before, new)):
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
        if before:
            words.learn(before, new, ids[len(head):])
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
        self.words = words  # spells space-led text without a tokenizer call (the usual rest)
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
        A run of newlines the text ends with is spelt as before more text: the draft writes on
        from it, and the next sync then keeps it.
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
        spelt = (self.words.spell(bytes(text[max(0, pos - _BEFORE):pos]), bytes(text[pos:end]),
                                  followed=True) if self.words else None)
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
            if piece is None and unspellable_end(self.tokenizer, bytes(text[pos:end])):
                self._read(bytes(text))  # read on from after the byte
                return
            del self.ids[len(self.ids) - n_back:]
            if piece is None:  # the covered text ends inside a character, or holds a byte that
                start = pos  # is none's: encoded as bytes from where the ids end
                ids = encode_bytes(self.tokenizer, bytes(text[pos:end]))
            else:
                ids = self.tokenizer.encode(piece, add_special=False)
            self.ids.extend(ids)
            if self.words:
                self._learn(text, start, pos, end, ids)
            pos = end
        self.covered = pos

    def _learn(self, text: bytes, start: int, pos: int, end: int, ids: list[int]) -> None:
        """Teach `words` the ids for text[pos:end], where `ids` spell text[start:end]."""
        i, n = leading_tokens(self.table, ids, pos - start)
        if n == pos - start:  # the look-behind ends on a token boundary
            self.words.learn(bytes(text[max(0, pos - _BEFORE):pos]), bytes(text[pos:end]), ids[i:])

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


def _by_second_tokenizer(tokenizer) -> weakref.WeakKeyDictionary:
    return weakref.WeakKeyDictionary()


def per_tokenizer_pair(draft_tokenizer, target_tokenizer, build: Callable):
    """build(draft_tokenizer, target_tokenizer), computed once per pair, as `per_tokenizer`
    does for one. What it builds must not hold either tokenizer (the keys are weak)."""
    built = per_tokenizer(target_tokenizer, _by_second_tokenizer).setdefault(draft_tokenizer, {})
    if build not in built:
        built[build] = build(draft_tokenizer, target_tokenizer)
    return built[build]


# a token holding a non-space, then a space that a non-space or the token's end follows: it
# could span the boundary before a space-led piece ("a▁the", "e "). Gemma 3 has one, "> </".
_SPANS_A_PIECE_BOUNDARY = re.compile(rb"[^\s] (?:[^\s]|$)")
# a token holding an ASCII letter or digit, then ASCII punctuation ("s,", "<strong>"): it could
# span the boundary before a punctuation lead. Gemma 3 has 72, all markup; SmolLM2 none.
_SPANS_A_LEAD_BOUNDARY = re.compile(rb"[A-Za-z0-9][!-/:-@\[-`{-~]")
# a token holding a newline next to a non-space: in neither real vocabulary
_NEWLINE_BESIDE_TEXT = re.compile(rb"\n[^\s]|[^\s]\n")
# where such a boundary falls inside a segment ("clear|,", "2026|)."), as a zero-width match
_AT_A_LEAD = re.compile(rb"(?<=[A-Za-z0-9])(?=[!-/:-@\[-`{-~])")
# the text's segments: space-led pieces (" the", " clear,"), runs of newlines, and heads (the
# text's first non-spaces, or a line's): ", what is", " the results.\n\nThe end"
_SEGMENT = re.compile(rb" [^\s]+|\n+|[^\s]+")
_PUNCTUATION = re.compile(rb"[!-/:-@\[-`{-~]+")
_WORD = re.compile(rb" [A-Za-z]+")
_MAX_PIECES = 1 << 16  # learned pieces kept per tokenizer
_BEFORE = 16  # bytes of preceding text callers give `spell`: the longest spanning token's reach
_MAX_SPANNING = 64  # more tokens than this that could span a piece boundary: not worth it
_MAX_GLUED = 128  # the same for a lead's boundary (one regex search checks them all)
# one-token words learned from one tokenizer call when a SpaceWords is built: 114 ms for
# Gemma 3, 49 for SmolLM2, against ~200 us for each first-time check in a round
_COMMON_WORDS = 10_000
_RUNS_PROBED = 16  # longer runs of newlines are rare in text: left to the tokenizer


def _any_of(tokens: list[bytes]) -> re.Pattern | None:
    """One search for any of the tokens (a loop of `in` tests costs ~0.1 us a token)."""
    return re.compile(b"|".join(map(re.escape, tokens))) if tokens else None


class SpaceWords:
    """Common text spelt without calling the tokenizer: a call costs ~200 us right after a
    forward pass (cold caches), and such text is most of what a draft writes. The text is
    lines of space-led pieces (" the", " clear,", " 2026") joined by runs of newlines, each
    line but the first opening with a head (its first non-spaces: "The", "1."). The first
    line may open with a head too where the text before it ends in an ASCII letter or digit
    and the head is ASCII punctuation (",", "?", ")."); its pieces follow a non-space. The
    text ends in newlines only where the tokenizer spells that run there as it does before
    more text (`runs_alike_at_end`: Gemma's runs, SmolLM2's single newline), or where more
    text will follow it (`followed`). Inside a piece, an ASCII letter or digit followed by
    ASCII punctuation is a boundary too (" clear" and ","), where the text holds none of the
    vocabulary's tokens that span one (Gemma's markup, "<strong>").

    Exact, not a guess. Where no token in the vocabulary can span a boundary (hold text from
    both sides of it), BPE, SentencePiece and Unigram all split the text on either side as
    they would split it alone. The vocabulary is scanned once for tokens that could span
    these boundaries; text that holds one of the few found (`spanning`, `glued`) is not
    spelt this way. The segments' ids come from the tokenizer's own output for earlier text
    (`learn`; the 10,000 commonest one-token words are learned when built), or are the
    vocabulary's other one-token words, each checked with the tokenizer the first time it is
    spelt (a vocabulary can hold a word its merges never reach).
    """

    def __init__(self, tokenizer, words: dict[bytes, int], spanning: list[bytes],
                 glued: list[bytes] | None = None, newline_bounds: bool = False) -> None:
        self.tokenizer = tokenizer
        self.words = words  # " word" -> its id, not yet checked
        self.spanning = spanning
        self.glued = glued  # None: too many to check, punctuation leads are not spelt
        self.newline_bounds = newline_bounds  # no token holds a newline beside a non-space
        self._spanning = _any_of(spanning)
        self._glued = _any_of(glued or [])
        # bytes of `before` the checks read
        self.reach = max(map(len, spanning + (glued or [])), default=1)
        self.pieces: dict[bytes, list[int]] = {}  # checked words and learned segments
        self.unreachable: set[bytes] = set()
        self.runs_alike_at_end = 0  # newline runs up to this long end text as they go on

    def spell(self, before: bytes, text: bytes, followed: bool = False) -> list[int] | None:
        """The tokenizer's ids for `text` following `before` (the text's last bytes, at least
        `reach` of them where there are that many), or None when `text` is not made as the
        class says, or holds a segment not learned yet. followed: more text will follow, so
        a run of newlines at the end is spelt as it is before text (what a draft that writes
        on from it reads), not as a text's last run."""
        pieces = self._split(before, text, followed)
        if pieces is None:
            return None
        unknown = [piece for piece in dict.fromkeys(pieces) if piece not in self.pieces]
        if unknown and not self._check_words(unknown):
            return None
        return [token for piece in pieces for token in self.pieces[piece]]

    def learn(self, before: bytes, text: bytes, ids: Sequence[int]) -> None:
        """Keep the segments of `text` (following `before`), given `ids`: the tokenizer's own
        tokens for it in that place."""
        pieces = self._split(before, text)
        if pieces is None or len(self.pieces) >= _MAX_PIECES:
            return
        table = self.tokenizer.bytes_table()
        start = 0
        for piece in pieces:
            n = leading_tokens(table, ids, len(piece), start)[0]
            if b"".join(table[t] for t in ids[start:start + n]) != piece:  # a token across
                return  # the boundary: the rule does not hold here
            self.pieces.setdefault(piece, list(ids[start:start + n]))
            start += n

    def learn_common(self, n: int = _COMMON_WORDS) -> None:
        """Learn the n most frequent one-token words from one tokenizer call, so that text made
        of them is spelt without a call in a round. BPE and SentencePiece number their merges
        by frequency, so these are the lowest ids."""
        common = b"".join(sorted(self.words, key=self.words.get)[:n])
        if not common:
            return
        ids = self.tokenizer.encode("a" + common.decode(), add_special=False)
        table = self.tokenizer.bytes_table()
        n_lead, reached = leading_tokens(table, ids, 1)
        if reached == 1:  # "a" is its own token (it keeps the first word from opening the text)
            self.learn(b"a", common, ids[n_lead:])

    def learn_newline_runs(self, longest: int = _RUNS_PROBED) -> None:
        """Learn how the tokenizer spells each run of 1..longest newlines between two
        non-spaces, and up to which length it spells a run the same at the end of the text
        (`runs_alike_at_end`): Gemma's SentencePiece every run probed, SmolLM2's byte-level
        BPE one newline (its pre-tokenizer splits "\\n\\n" before text, not at the end)."""
        table = self.tokenizer.bytes_table()
        if not self.newline_bounds or b"a" not in table or b"\n" not in table:
            return  # (a toy vocabulary may not spell the probes at all)
        alike = True
        for n in range(1, longest + 1):
            run = "\n" * n
            between = self.tokenizer.encode(f"a{run}a", add_special=False)
            if (len(between) < 3 or table[between[0]] != b"a" or table[between[-1]] != b"a"
                    or b"".join(table[t] for t in between[1:-1]) != run.encode()):
                return
            self.pieces[run.encode()] = between[1:-1]
            alike = alike and self.tokenizer.encode(f"a{run}", add_special=False) == between[:-1]
            if alike:
                self.runs_alike_at_end = n

    def splits_a_run(self, before: bytes, new: bytes) -> bool:
        """Whether `new` opens with newlines that continue the run `before` ends with into
        a run the tokenizer spells with no token boundary where `before` ends ("\\n\\n" then
        "\\nThe" is "\\n\\n\\n", "The" for Gemma): then the committed tokens cannot come back
        unchanged from encoding the two together, and a look-behind window is encoded in vain."""
        tail = len(before) - len(before.rstrip(b"\n"))
        lead = len(new) - len(new.lstrip(b"\n"))
        if not tail or not lead or tail == len(before):  # the run may reach further back
            return False
        if before[-tail - 1:-tail].isspace() or new[lead:lead + 1].isspace():
            return False  # the runs were learned between two non-spaces
        if lead == len(new) and tail + lead > self.runs_alike_at_end:  # its spelling at the end
            return False
        spelt = self.pieces.get(b"\n" * (tail + lead))
        if spelt is None:
            return False
        table = self.tokenizer.bytes_table()
        return tail not in itertools.accumulate(len(table[t]) for t in spelt)

    def _split(self, before: bytes, text: bytes, followed: bool = False) -> list[bytes] | None:
        """`text` cut at boundaries no token can span, or None where the class rules it out."""
        if not before or not text or _decodes(bytes(text)) is None:
            return None
        segments = _SEGMENT.findall(text)
        if sum(map(len, segments)) != len(text):  # double spaces, tabs, "\r", " \n": no rule
            return None
        # byte-level BPE splits "\n\n" one way before text and another at the end
        final_run = len(segments[-1]) if segments[-1][:1] == b"\n" else 0
        if final_run > self.runs_alike_at_end and not followed:
            return None
        previous = before[-1:]
        glued = False  # a punctuation lead right after a letter or digit
        for i, segment in enumerate(segments):
            first = segment[:1]
            if first == b"\n":  # a run of newlines: a non-space on both sides
                if previous.isspace() or not self.newline_bounds:
                    return None
            elif first != b" ":  # a head: a line's, or the text's where it is a lead
                if previous != b"\n":
                    if not (i == 0 and previous.isalnum() and self.glued is not None
                            and _PUNCTUATION.fullmatch(segment)):
                        return None
                    glued = True
            elif previous.isspace():  # " the" after a space or newline may merge with it
                return None
            previous = segment[-1:]
        around = bytes(before[-self.reach:]) + text
        if self._spanning and self._spanning.search(around):
            return None
        markup = self._glued is not None and self._glued.search(around) is not None
        if glued and markup:
            return None
        if self.glued is not None and not markup and _SPANS_A_LEAD_BOUNDARY.search(text):
            # no token spans a letter or digit and the punctuation after it here either:
            # " clear," is " clear" and ",", a word and a piece learned once for every word
            segments = [piece for segment in segments for piece in _AT_A_LEAD.split(segment)]
        return segments

    def _check_words(self, pieces: list[bytes]) -> bool:
        """Whether every piece is a one-token word the tokenizer reaches; those it reaches are
        kept. One tokenizer call for them all (a call is what this class saves): the words'
        boundaries are spaces no token spans, so each word's token comes out on its own."""
        tokens = [self.words.get(piece) for piece in pieces]
        if None in tokens or any(piece in self.unreachable for piece in pieces):
            return False
        text = "a" + b"".join(pieces).decode()
        if self.tokenizer.encode(text, add_special=False)[-len(tokens):] == tokens:
            self.pieces.update((piece, [token]) for piece, token in zip(pieces, tokens))
            return True
        if len(pieces) == 1:
            self.unreachable.add(pieces[0])
            return False
        return all([self._check_words([piece]) for piece in pieces])  # each, to know which


def space_words(tokenizer) -> SpaceWords | None:
    """The tokenizer's SpaceWords, or None where many tokens could span a piece boundary.
    Build it through `per_tokenizer`: it scans the vocabulary."""
    table = tokenizer.bytes_table()
    spanning = [b for b in table if _SPANS_A_PIECE_BOUNDARY.search(b)]
    if len(spanning) > _MAX_SPANNING or any(len(b) > _BEFORE for b in spanning):
        return None
    glued = [b for b in table if _SPANS_A_LEAD_BOUNDARY.search(b)]
    if len(glued) > _MAX_GLUED or any(len(b) > _BEFORE for b in glued):
        glued = None
    newline_bounds = not any(_NEWLINE_BESIDE_TEXT.search(b) for b in table)
    words = {b: i for i, b in enumerate(table) if _WORD.fullmatch(b)}
    spelling = SpaceWords(tokenizer, words, spanning, glued, newline_bounds)
    spelling.learn_common()
    spelling.learn_newline_runs()
    return spelling


def leading_tokens(table: Sequence[bytes], ids: Sequence[int], n_bytes: int,
                   start: int = 0) -> tuple[int, int]:
    """The fewest ids from ids[start] on whose bytes reach n_bytes: (how many, their bytes'
    length, which is less than n_bytes where even all of them fall short)."""
    i, reached = start, 0
    while reached < n_bytes and i < len(ids):
        reached += len(table[ids[i]])
        i += 1
    return i - start, reached


def text_before(table: Sequence[bytes], ids: Sequence[int], n: int = _BEFORE) -> bytes:
    """The last bytes of the ids' text, n of them where there are, not reaching past a token
    with no text (a control token: the text on its two sides is encoded apart)."""
    out = b""
    for token in reversed(ids):
        if not table[token] or len(out) >= n:
            break
        out = table[token] + out
    return out


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
