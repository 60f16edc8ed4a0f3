"""The tokenizer bridge on made-up vocabularies (fast tier): re-encoding spells exactly the new
bytes, its look-behind window stops at control tokens and falls back to the new text alone
where the window's tokens would change, and DraftText keeps its ids in step with the text."""

from hypothesis import given, settings
from hypothesis import strategies as st
from synthetic import ToyTokenizer

from anyspec.vocab import DraftText, incomplete_utf8_tail, reencode_continuation

# "" is a control token (no text); multi-byte characters and pieces that merge across a cut
PIECES = ["", "a", "b", "c", " ", "\n", "ab", "bc", "abc", " a", "\n\n", "é", "日本", "日", "本"]


class Recording(ToyTokenizer):
    """A ToyTokenizer that records the text of every encode call."""

    def __init__(self, pieces):
        super().__init__(pieces)
        self.calls = []

    def encode(self, text, add_special=True, parse_special=False):
        self.calls.append(text)
        return super().encode(text, add_special, parse_special)


def test_the_window_is_encoded_with_the_new_text_and_stops_at_a_control_token():
    tok = Recording(PIECES)
    a, b, space, control = 1, 2, 4, 0
    committed = [control, a, space, b]
    assert reencode_continuation(tok, committed, b"\n") == [5]
    assert tok.calls == ["a b\n"]  # the control token has no text: the window stops there
    tok.calls.clear()
    assert reencode_continuation(tok, committed, b"\n", window=1) == [5]
    assert tok.calls == ["b\n"]


def test_new_text_that_would_change_the_window_is_encoded_alone():
    tok = Recording(PIECES)
    # "a" + "bc" is one token "abc": the committed "a" would not come back
    assert reencode_continuation(tok, [1], b"bc") == [7]
    assert tok.calls == ["abc", "bc"]


def test_an_unfinished_character_at_the_end_is_left_out():
    tok = ToyTokenizer(PIECES)
    assert reencode_continuation(tok, [1], "bé".encode()[:-1]) == [2]
    assert reencode_continuation(tok, [1], "日".encode()[:2]) == []
    assert reencode_continuation(tok, [1], b"") == []


text = st.text(alphabet="abc \né日本", max_size=24)


@settings(max_examples=300, deadline=None)
@given(text, text, st.integers(0, 60), st.sampled_from([0, 1, 4]))
def test_reencoding_spells_exactly_the_new_bytes(before, after, cut, window):
    tok = ToyTokenizer(PIECES)
    committed = tok.encode(before)
    new = after.encode()[:cut]
    proxies = reencode_continuation(tok, committed, new, window=window)
    assert tok.decode_bytes(proxies) == new[:len(new) - incomplete_utf8_tail(new)]


@settings(max_examples=200, deadline=None)
@given(text, st.lists(st.integers(1, 7), min_size=1, max_size=12), st.integers(0, 4))
def test_draft_text_ids_always_spell_the_committed_text_they_cover(data, steps, guess_offset):
    """Synced at byte cuts (inside characters too) with a partly wrong guess of drafted tokens,
    the ids spell the committed text up to at most an unfinished character."""
    tok = ToyTokenizer(PIECES)
    data = ("ab " + data).encode()
    draft_text = DraftText(tok, data[:3])
    end = 3
    for step in steps:
        end = min(len(data), end + step)
        guess = tok.encode(data[draft_text.covered:end + guess_offset].decode("utf-8", "ignore"))
        draft_text.sync(data[:end], guess)
        assert tok.decode_bytes(draft_text.ids) == data[draft_text.start:draft_text.covered]
        assert 0 <= end - draft_text.covered <= incomplete_utf8_tail(data[:end])
