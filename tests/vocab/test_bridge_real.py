"""The tokenizer bridge on the real Gemma 3 (SentencePiece) and SmolLM2 (byte-level BPE)
tokenizers, with strings chosen to break it: leading spaces, newlines, digits, emoji, CJK,
Arabic, Cyrillic, code with tabs, and cuts inside multi-byte characters. The tests that load
the real models are marked slow; the ones on made-up vocabularies run in the fast tier.
"""

import re

import numpy as np
import pytest

from anyspec.bench.data import read_questions
from anyspec.errors import AnyspecError
from anyspec.proposers import make_proposer
from anyspec.vocab import (DraftText, incomplete_utf8_tail, leading_tokens, one_to_one,
                           per_tokenizer, reencode_continuation, shared_token_map, space_words)
from synthetic import ToyModel, ToyTokenizer

ADVERSARIAL = [
    "  two leading spaces, then   three inside",
    "\n\nblank lines\n\n\nand a trailing newline\n",
    "digits 1234567890, 3.14159 and 2026-11-23",
    "emoji: I ❤️ 🦙s and 👩‍👩‍👧 families 🎉",
    "中文：机器学习很有趣。日本語も少し。",
    "العربية: مرحبا بالعالم",
    "Кириллица: Привет, мир! Ёлка.",
    "def f(x):\n\tif x:\n\t\treturn x\t# tabbed\n",
    "look-alikes of the markers: <0x41> ĠĊ and <bos>",
]
PROSE = ["The results of the experiment were clear.",  # punctuation leads, lines' first words
         "Why? Because, as (always) it rained... Musk's view: 42%.\n\nThe end.\nYes, 3), done!\n\n"]


@pytest.fixture(params=["gemma", "smollm"])
def tokenizer(request, gemma_llamacpp, smollm_llamacpp):
    return (gemma_llamacpp if request.param == "gemma" else smollm_llamacpp).tokenizer


@pytest.mark.slow
@pytest.mark.parametrize("text", ADVERSARIAL)
def test_token_bytes_spell_the_text_exactly(tokenizer, text):
    ids = tokenizer.encode(text, add_special=False)
    assert tokenizer.decode_bytes(ids) == text.encode()


@pytest.mark.slow
def test_a_literal_sentencepiece_space_marker_reads_as_a_space(gemma_llamacpp, smollm_llamacpp):
    """SentencePiece writes spaces as U+2581 before it tokenizes, so Gemma cannot tell a typed
    "▁" from a space: its own tokens for it spell a space. That is the target's truth, and
    the bridge reports it as such; the byte-level draft keeps the character."""
    text = "a▁b ▁"
    gemma, smollm = gemma_llamacpp.tokenizer, smollm_llamacpp.tokenizer
    assert gemma.decode_bytes(gemma.encode(text, add_special=False)) == b"a b  "
    assert smollm.decode_bytes(smollm.encode(text, add_special=False)) == text.encode()


@pytest.mark.slow
@pytest.mark.parametrize("shortcut", [False, True], ids=["encode", "whole-word shortcut"])
@pytest.mark.parametrize("text", ADVERSARIAL + PROSE)
def test_reencoding_after_a_canonical_prefix_gives_the_canonical_rest(tokenizer, text,
                                                                       shortcut):
    """Committed = the first j target tokens of the text; the new bytes are the rest. The proxy
    tokens must be exactly the tokenizer's own tokens for the rest of the text (on the byte-
    level BPE too: any model may be the target)."""
    tok = tokenizer
    words = space_words(tok) if shortcut else None  # a fresh one: the first pass teaches it
    ids = tok.encode(text, add_special=False)
    for _ in range(2 if shortcut else 1):
        for j in range(len(ids)):
            rest = text.encode()[len(tok.decode_bytes(ids[:j])):]
            assert reencode_continuation(tok, ids[:j], rest, words=words) == ids[j:], \
                (j, tok.decode(ids[:j]))


@pytest.mark.slow
@pytest.mark.parametrize("text", ADVERSARIAL)
def test_reencoding_at_any_byte_cut_keeps_every_byte(gemma_llamacpp, text):
    """Committed text cut at any byte (inside a character too), encoded on its own; the new
    bytes follow. The proxies spell exactly the new bytes, less an unfinished last character."""
    tok = gemma_llamacpp.tokenizer
    data = text.encode()
    for cut in range(0, len(data), 3):
        head = data[:cut]
        head = head[:len(head) - incomplete_utf8_tail(head)]
        committed = tok.encode(head.decode(), add_special=False)
        new = data[len(head):][:11]  # a draft's worth of bytes, often ending inside a character
        proxies = reencode_continuation(tok, committed, new)
        expect = new[:len(new) - incomplete_utf8_tail(new)]
        assert tok.decode_bytes(proxies) == expect


@pytest.mark.slow
@pytest.mark.parametrize("shortcut,window", [(False, None), (True, None), (True, 2)],
                         ids=["encode", "whole-word shortcut", "2-token prompt window"])
@pytest.mark.parametrize("text", ADVERSARIAL + PROSE + ["plain words, then Words and more."])
def test_draft_text_follows_committed_text_in_uneven_pieces(smollm_llamacpp, text, shortcut,
                                                             window):
    """The draft ids always spell a prefix of the committed text (never text that was not
    committed), short of it by at most an unfinished character; and a sync rewrites at most
    the look-behind window of earlier ids. With a prompt window they spell the text from
    where the window starts."""
    tok = smollm_llamacpp.tokenizer
    data = text.encode()
    rng = np.random.default_rng(len(data))
    draft_text = DraftText(tok, data[:12], words=space_words(tok) if shortcut else None,
                           window=window)
    assert tok.decode_bytes(draft_text.ids) == data[draft_text.start:draft_text.covered]
    assert window is None or (len(draft_text.ids) <= window and draft_text.start > 0)
    end = 12
    while end < len(data):
        end = min(len(data), end + int(rng.integers(1, 7)))  # byte cuts, inside characters too
        before = list(draft_text.ids)
        guess = tok.encode(data[draft_text.covered:end + 4].decode("utf-8", "ignore"),
                           add_special=False)  # a draft's guess, partly wrong past `end`
        draft_text.sync(data[:end], guess)
        assert tok.decode_bytes(draft_text.ids) == data[draft_text.start:draft_text.covered]
        # confirmed draft tokens may end inside a character (byte-level BPE splits them)
        assert 0 <= end - draft_text.covered <= incomplete_utf8_tail(data[:end])
        kept = next((i for i, (a, b) in enumerate(zip(before, draft_text.ids)) if a != b),
                    min(len(before), len(draft_text.ids)))
        assert len(before) - kept <= draft_text.lookbehind
    assert draft_text.covered == len(data)


def _ids_after(tok, before: str, text: str) -> list[int]:
    """The tokenizer's ids for `text` where it follows `before` (asserting they split there)."""
    whole = tok.encode(before + text, add_special=False)
    for cut in range(len(whole) + 1):
        if tok.decode_bytes(whole[:cut]) == before.encode():
            return whole[cut:]
    raise AssertionError(f"no token boundary between {before!r} and {text!r}")


@pytest.mark.slow
def test_whole_words_and_learned_pieces_are_spelt_as_the_tokenizer_spells_them(tokenizer):
    """SpaceWords gives the tokenizer's own ids for runs of one-token words after any
    non-space, words it was never checked on included, and for pieces it learned from the
    tokenizer's output elsewhere; it declines text that is not space-led pieces after a
    non-space; whole words synced one at a time give the ids encoding all at once."""
    words = space_words(tokenizer)
    assert words is not None and all(w.startswith(b" ") for w in words.words)
    pool = list(words.words)[7::499]
    rng = np.random.default_rng(7)
    n_spelt = 0
    for before in ["x", "9", ")", "ü", "中", "-"] * 8:
        run = b"".join(pool[i] for i in rng.integers(len(pool), size=3))
        spelt = words.spell(before.encode(), run)
        if spelt is not None:
            n_spelt += 1
            assert spelt == _ids_after(tokenizer, before, run.decode()), (before, run)
    assert n_spelt > 24  # most runs are whole words the vocabulary holds
    for before, text in [(b"a\n", b" the"), (b"a ", b" the"), (b"", b" the"), (b"a", b"the"),
                         (b"a", b"  the"), (b"a", b" the" + b"\n" * 17), (b"a", b" "),
                         (b"a", b" the,")]:
        assert words.spell(before, text) is None, (before, text)  # the last: not learned yet

    taught = " there, world! It is 2026, and (so) the sky: blue-ish. Привет, мир."
    words.learn(b"x", taught.encode(), _ids_after(tokenizer, "x", taught))
    for before, text in [("q", " world! It is 2026,"), ("é", " Привет, the sky: blue-ish."),
                         ("7", " (so) the")]:
        assert words.spell(before.encode(), text.encode()) == _ids_after(tokenizer, before, text)

    # a punctuation lead after a letter or digit, and a line's first word, once learned
    for before, taught in [("x", ", it is (so)."), ("x", "). Yes, it"), ("x", "!"),
                           ("x.\n", "The end"), ("x\n", "1. Go"), ("\n", "42%) then")]:
        words.learn(before.encode(), taught.encode(), _ids_after(tokenizer, before, taught))
    for before, text in [("q", ", it is"), ("9", ")."), ("B", "!"), ("so", "). Yes, (so)"),
                         ("red.\n", "The end"), ("\n\n", "1. Go"), ("\n", "42%) then")]:
        assert words.spell(before.encode(), text.encode()) == _ids_after(tokenizer, before, text)
    for before, text in [("q ", ", it"), ("(", ","), ("q", "s, it"), ("q", "The"), ("q\n", " The"),
                         ("q\n", "The" + "\n" * 17), ("ü", ",")]:  # the last: not an ASCII letter
        assert words.spell(before.encode(), text.encode()) is None, (before, text)

    text = "The results of the experiment were clear"
    draft_text = DraftText(tokenizer, b"The", words=words)
    data = text.encode()
    for end in [i for i in range(4, len(data)) if data[i:i + 1] == b" "] + [len(data)]:
        draft_text.sync(data[:end])
    assert draft_text.ids == tokenizer.encode(text)


@pytest.mark.slow
def test_spelt_prose_is_what_the_tokenizer_makes_of_it(tokenizer):
    """Spec-Bench's questions cut at random places (punctuation, digits, code, markup, other
    scripts): wherever SpaceWords spells a piece of text after the text before it, it gives
    the tokenizer's own ids, and it declines where a token spans the cut. It learns from the
    tokenizer's output as a proposer does, so that learned pieces get spelt too."""
    words = space_words(tokenizer)
    rng = np.random.default_rng(11)
    n_spelt = n_cut_punctuation = 0
    for question in read_questions()[::4]:
        text = question.turns[0]
        for _ in range(12):
            a, b = sorted(rng.integers(1, len(text) + 1, size=2))
            before, new = text[:a], text[a:b + 1]
            try:
                expected = _ids_after(tokenizer, before, new)
            except AssertionError:  # a token spans the cut
                assert words.spell(before[-16:].encode(), new.encode()) is None, (before, new)
                continue
            spelt = words.spell(before[-16:].encode(), new.encode())
            if spelt is None:
                words.learn(before[-16:].encode(), new.encode(), expected)
                continue
            assert spelt == expected, (before[-16:], new)
            n_spelt += 1
            n_cut_punctuation += re.search(r"[A-Za-z0-9][,.:;!?)]", new) is not None
    assert n_spelt > 40 and n_cut_punctuation > 10, (n_spelt, n_cut_punctuation)


@pytest.mark.slow
def test_the_commonest_words_are_learned_when_built(tokenizer, monkeypatch):
    """space_words learns the 10,000 most frequent one-token words from one tokenizer call,
    each as the tokenizer itself spells it after other text, so that a round meeting them for
    the first time spells them without a call."""
    words = space_words(tokenizer)
    common = sorted(words.words, key=words.words.get)[:10_000]
    assert len(common) == 10_000 and set(common) <= set(words.pieces)
    for word in common[::97]:
        assert words.pieces[word] == _ids_after(tokenizer, "x", word.decode()), word
    calls = []
    encode = tokenizer.encode
    monkeypatch.setattr(tokenizer, "encode", lambda *a, **k: calls.append(a) or encode(*a, **k))
    text = " it is one of the best known of all the ways to make"
    assert words.spell(b"x", text.encode()) == _ids_after(tokenizer, "x", text)
    assert calls == [(f"x{text}",)]  # _ids_after's own call: spell made none


@pytest.mark.slow
def test_newline_runs_are_spelt_at_the_end_only_where_the_tokenizer_ends_text_so(tokenizer):
    """A run of newlines ends a text the way it sits before more text in Gemma's
    SentencePiece, for every run probed, but not in SmolLM2's byte-level BPE past one newline
    ("\\n\\n" is one token at the end, two before text). SpaceWords spells a final run only
    where the two agree; asked for text that more text will follow (a draft's), it spells the
    run as before text."""
    words = space_words(tokenizer)
    gemma = tokenizer.vocab_size > 200_000  # Gemma 3's 262k, not SmolLM2's 49k
    assert words.runs_alike_at_end == (16 if gemma else 1)
    for n in range(1, 20):
        run = "\n" * n
        at_end = _ids_after(tokenizer, "x.", run)
        before_text = _ids_after(tokenizer, "x.", run + "Yes")[:-1]
        assert (at_end == before_text) == (gemma or n == 1), n
        spelt = words.spell(b"x.", run.encode())
        assert spelt == (at_end if n <= words.runs_alike_at_end else None), n
        followed = words.spell(b"x.", run.encode(), followed=True)
        assert followed == (before_text if n <= 16 else None), n


@pytest.mark.slow
def test_a_newline_run_the_new_text_continues_skips_the_look_behind_window(tokenizer,
                                                                          monkeypatch):
    """Committed text ending in "\\n\\n", new text "\\nThe": where the tokenizer spells the
    three newlines with no token boundary after two (Gemma), encoding a look-behind window
    with the new text cannot give the committed tokens back, so the new text is encoded alone
    in one call. Where it keeps the boundary (SmolLM2), the window is encoded as usual and
    gives the tokenizer's own ids."""
    words = space_words(tokenizer)
    committed = tokenizer.encode("It ended.\n\n", add_special=False)
    calls = []
    encode = tokenizer.encode
    monkeypatch.setattr(tokenizer, "encode", lambda *a, **k: calls.append(a) or encode(*a, **k))
    proxies = reencode_continuation(tokenizer, committed, b"\nThe", words=words)
    assert tokenizer.decode_bytes(proxies) == b"\nThe"
    if tokenizer.vocab_size > 200_000:  # Gemma: "\n\n\n" is one token
        assert calls == [("\nThe",)]
    else:  # SmolLM2 ends the text with "\n\n" and splits it before more text: the window works
        assert len(calls) == 1
        assert proxies == _ids_after(tokenizer, "It ended.\n\n", "\nThe")


@pytest.mark.slow
def test_a_word_the_tokenizer_never_makes_is_found_among_the_words_checked_with_it(
        gemma_llamacpp):
    """Gemma holds " YYYY" as one token but spells it " YYY" + "Y". Words are checked in one
    tokenizer call per text; when that call disagrees, each is checked alone, so the one
    unreachable word is set aside and the others are kept."""
    tok = gemma_llamacpp.tokenizer
    words = space_words(tok)
    assert b" YYYY" in words.words
    assert words.spell(b"x", b" the date YYYY is") is None
    assert words.unreachable == {b" YYYY"}
    assert {b" the", b" date", b" is"} <= set(words.pieces)
    assert words.spell(b"x", b" is the date") == _ids_after(tok, "x", " is the date")


def test_text_a_token_could_span_is_not_spelt():
    """Gemma's "> </" could be one token across a piece boundary: text holding it is not
    spelt piece by piece. A vocabulary with many such tokens gets no SpaceWords at all."""
    class Vocabulary:
        def __init__(self, pieces):
            self.table = [p.encode() for p in pieces]

        def bytes_table(self):
            return self.table

        def encode(self, text, add_special=True):  # no ids: SpaceWords learns nothing when built
            return []

    words = space_words(Vocabulary(["a", "b", " b", "a b", "c", "> </", "<"]))
    assert words.spanning == [b"a b", b"> </"]
    words.learn(b"c", b" b", [2])
    assert words.spell(b"c", b" b b") == [2, 2]
    assert words.spell(b"ca", b" b") is None  # "a b" could be one token
    assert words.spell(b"c>", b" b") == [2]  # "> </" cannot be in "> b"
    assert space_words(Vocabulary([f"x{i} y" for i in range(65)])) is None

    # tokens that could span the boundary before a punctuation lead, or after a newline
    words = space_words(Vocabulary(["a", "b", ",", " b", "b,", " a", "\n", "\nb"]))
    assert words.glued == [b"b,"] and not words.newline_bounds
    words.learn(b"a", b", b", [2, 3])
    assert words.spell(b"a", b", b") == [2, 3]
    assert words.spell(b"b", b", b") is None  # "b," could be one token
    assert words.spell(b"\n", b"b") is None  # so could "\nb"
    # inside a piece: " a," is " a" and "," unless the text holds a token that spans the cut
    words.learn(b"a", b" a", [5])
    words.learn(b"a", b",", [2])
    assert words.spell(b"b", b" a, a,") == [5, 2, 5, 2]
    assert words.spell(b"a", b" a, b,") is None  # "b," could be one token
    assert space_words(Vocabulary([f"x{i}," for i in range(129)])).glued is None


def test_one_to_one():
    assert one_to_one(np.array([-1, 3, 0, -1, 7]))
    assert not one_to_one(np.array([2, -1, 2]))
    assert one_to_one(np.array([-1, -1]))


@pytest.mark.slow
def test_shared_tokens_have_identical_bytes(gemma_llamacpp, smollm_llamacpp):
    d_tok, t_tok = smollm_llamacpp.tokenizer, gemma_llamacpp.tokenizer
    to_target = shared_token_map(d_tok, t_tok)
    shared = np.flatnonzero(to_target >= 0)
    assert 0.9 < len(shared) / d_tok.vocab_size < 1.0  # 0.939 measured: most, not all
    for d in shared:
        assert d_tok.token_bytes(int(d)) == t_tok.token_bytes(int(to_target[d]))
    # a whole character that the target has as a normal token maps to it, not to a byte token
    for text in [" the", "\n", "A", "1", "é"]:
        (t,) = t_tok.encode(text, add_special=False)
        d = d_tok.encode(text, add_special=False)
        if len(d) == 1:
            assert to_target[d[0]] == t


def test_tli_with_no_shared_tokens_names_the_methods_that_fit():
    target = ToyModel(ToyTokenizer(["a", "b"]), seed=1)
    draft = ToyModel(ToyTokenizer(["x", "y"]), seed=2)
    with pytest.raises(AnyspecError, match="slem or tokentiming"):
        make_proposer("tli", target, draft)


@pytest.mark.slow
def test_sd_with_different_vocabularies_names_the_methods_that_fit(gemma_llamacpp,
                                                                    smollm_llamacpp):
    with pytest.raises(AnyspecError, match="tokentiming, slem, tli, slrs"):
        make_proposer("sd", gemma_llamacpp, smollm_llamacpp)


@pytest.mark.slow
def test_turn_markers_are_tokens_only_when_asked(smollm_llamacpp, smollm_hf):
    """A chat template's markers are parsed as control tokens; typed text never forges one."""
    text = "<|im_start|>user\nhi<|im_end|>\n"
    for tok in (smollm_llamacpp.tokenizer, smollm_hf.tokenizer):
        parsed = tok.encode(text, add_special=False, parse_special=True)
        assert parsed[0] == 1 and parsed[4] == 2 and len(parsed) == 6  # <|im_start|>, <|im_end|>
        plain = tok.encode(text, add_special=False)
        assert 1 not in plain and 2 not in plain
        assert tok.decode_bytes(plain) == text.encode()


@pytest.mark.slow
def test_a_draft_tree_becomes_a_trie_of_proxies(gemma_llamacpp, smollm_llamacpp):
    """Each leaf's text, re-tokenized after the committed ids, is one path of the proxy tree;
    siblings are distinct; the first leaf's proxies lead; a branch that does not finish the
    pending bytes is left out."""
    from anyspec.proposers.retokenize import proxy_tree
    from anyspec.proposers.tree import DraftTree
    from anyspec.verify.tree import children_of

    d, t = smollm_llamacpp.tokenizer, gemma_llamacpp.tokenizer
    committed = t.encode("The scaling law", add_special=True)
    (a,), (b,), (c,) = d.encode(" says"), d.encode(" is"), d.encode(" of")
    (e,), (f,) = d.encode(" that"), d.encode(" the")
    # " says that" | " says the" | " is" | " of": leaves 2, 3, 4, 5 in depth-first order
    tree = DraftTree(tokens=[a, e, f, b, c], parents=[-1, 0, 0, -1, -1])
    tokens, parents = proxy_tree(tree, d, t, committed, b"", max_depth=4)
    children = children_of(parents)
    for kids in children:
        assert len({tokens[k] for k in kids}) == len(kids)
    paths = []
    for node in range(len(tokens)):
        if not children[node + 1]:
            path = []
            while node >= 0:
                path.insert(0, tokens[node])
                node = parents[node]
            paths.append(path)
    expected = [reencode_continuation(t, committed, text)
                for text in (b" says that", b" says the", b" is", b" of")]
    assert paths == expected
    assert parents[:len(expected[0])] == list(range(-1, len(expected[0]) - 1))  # leading chain
    # pending: committed bytes the draft's ids do not cover yet; only " is" continues them
    only = reencode_continuation(t, committed, b"s")
    chain = list(range(-1, len(only) - 1))
    assert proxy_tree(tree, d, t, committed, b" i", max_depth=4) == (only, chain)


def test_leading_tokens_counts_the_fewest_ids_that_reach_a_length():
    table = [b"ab", b"c", b"", b"defg"]
    ids = [0, 1, 2, 3, 0]
    assert leading_tokens(table, ids, 0) == (0, 0)
    assert leading_tokens(table, ids, 2) == (1, 2)
    assert leading_tokens(table, ids, 3) == (2, 3)  # the empty token after is not needed
    assert leading_tokens(table, ids, 4) == (4, 7)  # the token across the 4th byte: past it
    assert leading_tokens(table, ids, 4, start=1) == (3, 5)
    assert leading_tokens(table, ids, 99) == (5, 9)  # never reached: every id, their length
