"""The tokenizer bridge on the real Gemma 3 (SentencePiece) and SmolLM2 (byte-level BPE)
tokenizers, with strings chosen to break it: leading spaces, newlines, digits, emoji, CJK,
Arabic, Cyrillic, code with tabs, and cuts inside multi-byte characters. The tests that load
the real models are marked slow; the ones on made-up vocabularies run in the fast tier.
"""

import numpy as np
import pytest
from synthetic import ToyModel, ToyTokenizer

from anyspec.bench.data import read_questions
from anyspec.config import GeneratorConfig
from anyspec.errors import AnyspecError
from anyspec.vocab import (
    DraftText,
    incomplete_utf8_tail,
    leading_tokens,
    one_to_one,
    reencode_continuation,
    shared_token_map,
)

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
@pytest.mark.parametrize("text", ADVERSARIAL + PROSE)
def test_reencoding_after_a_canonical_prefix_gives_the_canonical_rest(tokenizer, text):
    """Committed = the first j target tokens of the text; the new bytes are the rest. The proxy
    tokens must be exactly the tokenizer's own tokens for the rest of the text (on the byte-
    level BPE too: any model may be the target)."""
    tok = tokenizer
    ids = tok.encode(text, add_special=False)
    for j in range(len(ids)):
        rest = text.encode()[len(tok.decode_bytes(ids[:j])):]
        assert reencode_continuation(tok, ids[:j], rest) == ids[j:], (j, tok.decode(ids[:j]))


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
@pytest.mark.parametrize("window", [None, 2], ids=["whole prompt", "2-token prompt window"])
@pytest.mark.parametrize("text", ADVERSARIAL + PROSE + ["plain words, then Words and more."])
def test_draft_text_follows_committed_text_in_uneven_pieces(smollm_llamacpp, text, window):
    """The draft ids always spell a prefix of the committed text (never text that was not
    committed), short of it by at most an unfinished character; and a sync rewrites at most
    the look-behind window of earlier ids. With a prompt window they spell the text from
    where the window starts."""
    tok = smollm_llamacpp.tokenizer
    data = text.encode()
    rng = np.random.default_rng(len(data))
    draft_text = DraftText(tok, data[:12], window=window)
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


@pytest.mark.slow
def test_words_synced_one_at_a_time_give_the_ids_of_encoding_all_at_once(tokenizer):
    """Each sync re-encodes a few draft tokens before the new text with it, so whole words
    committed one at a time come out as the tokenizer spells the whole text."""
    text = "The results of the experiment were clear"
    draft_text = DraftText(tokenizer, b"The")
    data = text.encode()
    for end in [i for i in range(4, len(data)) if data[i:i + 1] == b" "] + [len(data)]:
        draft_text.sync(data[:end])
    assert draft_text.ids == tokenizer.encode(text)


@pytest.mark.slow
def test_prose_cut_anywhere_is_reencoded_as_the_tokenizer_encodes_it(tokenizer):
    """Spec-Bench's questions cut at random places (punctuation, digits, code, markup, other
    scripts): the proxies always spell exactly the new text, and where the tokenizer's own
    tokens for the whole text have a boundary at the cut, they are its own tokens after it."""
    rng = np.random.default_rng(11)
    n_canonical = 0
    for question in read_questions()[::4]:
        text = question.turns[0]
        for _ in range(12):
            a, b = sorted(rng.integers(1, len(text) + 1, size=2))
            before, new = text[:a], text[a:b + 1]
            whole = tokenizer.encode(before + new, add_special=False)
            cut = next((c for c in range(len(whole) + 1)
                        if tokenizer.decode_bytes(whole[:c]) == before.encode()), None)
            committed = whole[:cut] if cut is not None else tokenizer.encode(before,
                                                                             add_special=False)
            proxies = reencode_continuation(tokenizer, committed, new.encode())
            assert tokenizer.decode_bytes(proxies) == new.encode(), (before[-16:], new)
            if cut is not None:
                assert proxies == whole[cut:], (before[-16:], new)
                n_canonical += 1
    assert n_canonical > 100, n_canonical


@pytest.mark.slow
@pytest.mark.parametrize("before,new", [("x.", "\n"), ("x.", "\n\n"), ("x.", "\n" * 17),
                                        ("x.", "\n\nYes"), ("x", " the date YYYY is"),
                                        ("It ended.\n\n", "\nThe")])
def test_newline_runs_and_unusual_words_are_reencoded_exactly(tokenizer, before, new):
    """A run of newlines (spelt one way at the end of a text and another before more text in
    SmolLM2), a word the vocabulary holds but the tokenizer never makes (Gemma's " YYYY"), and
    new newlines that continue committed ones. Where the tokenizer's own tokens for the whole
    text keep the committed ones, the proxies are its tokens after them; where they do not
    (Gemma spells "\\n\\n\\n" as one token), the new text is encoded alone."""
    committed = tokenizer.encode(before, add_special=False)
    whole = tokenizer.encode(before + new, add_special=False)
    proxies = reencode_continuation(tokenizer, committed, new.encode())
    assert tokenizer.decode_bytes(proxies) == new.encode()
    if whole[:len(committed)] == committed:
        assert proxies == whole[len(committed):]
    else:
        assert proxies == tokenizer.encode(new, add_special=False)


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
        GeneratorConfig(method="tli").proposer(target, draft)


@pytest.mark.slow
def test_sd_with_different_vocabularies_names_the_methods_that_fit(gemma_llamacpp,
                                                                    smollm_llamacpp):
    with pytest.raises(AnyspecError, match="tokentiming, slem, tli, slrs"):
        GeneratorConfig(method="sd").proposer(gemma_llamacpp, smollm_llamacpp)


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
    from anyspec.trees import children_of

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
