"""Tests for anyspec.align.dtw: TokenTiming DTW alignment (no timing asserts)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from anyspec.align import (
    covered_draft_prefix,
    dtw_align,
    edit_distance,
    normalise_token_text,
    target_to_draft,
)

# --- plain reference implementations -------------------------------------------


def ref_edit_distance(a: str, b: str) -> int:
    """Textbook full-matrix Levenshtein."""
    D = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(len(a) + 1):
        D[i][0] = i
    for j in range(len(b) + 1):
        D[0][j] = j
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            D[i][j] = min(
                D[i - 1][j] + 1,
                D[i][j - 1] + 1,
                D[i - 1][j - 1] + (a[i - 1] != b[j - 1]),
            )
    return D[len(a)][len(b)]


def effective_band(k: int, m: int, band: int | None) -> float:
    return math.inf if band is None else max(band, abs(k - m))


def ref_dtw_matrix(draft, target, band):
    """Full (k+1)x(m+1) DTW cost matrix, cells outside the band = inf (1-based)."""
    k, m = len(draft), len(target)
    r = effective_band(k, m, band)
    C = [[math.inf] * (m + 1) for _ in range(k + 1)]
    C[0][0] = 0
    for i in range(1, k + 1):
        for j in range(1, m + 1):
            if abs(i - j) > r:
                continue
            C[i][j] = ref_edit_distance(draft[i - 1], target[j - 1]) + min(
                C[i - 1][j], C[i][j - 1], C[i - 1][j - 1]
            )
    return C


def path_cost(path, draft, target) -> int:
    return sum(ref_edit_distance(draft[i], target[j]) for i, j in path)


def check_path(path, k, m, band):
    assert path[0] == (0, 0)
    assert path[-1] == (k - 1, m - 1)
    for (i0, j0), (i1, j1) in itertools.pairwise(path):
        assert (i1 - i0, j1 - j0) in {(1, 0), (0, 1), (1, 1)}
    assert {i for i, _ in path} == set(range(k))
    assert {j for _, j in path} == set(range(m))
    r = effective_band(k, m, band)
    assert all(abs(i - j) <= r for i, j in path)


# --- edit distance ---------------------------------------------------------------


@pytest.mark.parametrize(
    "a,b,d",
    [
        ("", "", 0),
        ("", "abc", 3),
        ("abc", "", 3),
        ("abc", "abc", 0),
        ("kitten", "sitting", 3),
        ("flaw", "lawn", 2),
        ("Scal", "S", 3),
        ("cal", "Scal", 1),
        ("Law", "L", 2),
        ("Law", "aw", 1),
        ("ing", "ing", 0),
        ("intention", "execution", 5),
        (" the", "the", 1),
        ("héllo", "hello", 1),
        ("日本語", "日本", 1),
    ],
)
def test_edit_distance_known_values(a, b, d):
    assert edit_distance(a, b) == d


def test_edit_distance_long_strings():
    a = "abcdefghij" * 10
    b = "abcdefghiX" * 10 + "yz"
    assert edit_distance(a, b) == ref_edit_distance(a, b) == 12


short_text = st.text(alphabet="abcL ▁é", max_size=8)


@settings(max_examples=300, deadline=None)
@given(short_text, short_text, short_text)
def test_edit_distance_properties(a, b, c):
    d_ab = edit_distance(a, b)
    assert d_ab == ref_edit_distance(a, b)
    assert d_ab == edit_distance(b, a)
    assert (d_ab == 0) == (a == b)
    assert abs(len(a) - len(b)) <= d_ab <= max(len(a), len(b))
    assert edit_distance(a, c) <= d_ab + edit_distance(b, c)


def test_normalise_token_text():
    assert normalise_token_text("▁the") == "the"
    assert normalise_token_text("Ġthe") == "the"
    assert normalise_token_text(" the") == "the"
    assert normalise_token_text("the") == "the"
    assert normalise_token_text("") == ""
    assert normalise_token_text("▁") == ""
    assert normalise_token_text("▁▁x") == "▁x"  # only one marker is stripped


# --- DTW -----------------------------------------------------------------------------

PAPER_DRAFT = ["S", "cal", "ing", "Law"]
PAPER_TARGET = ["Scal", "ing", "L", "aw"]
PAPER_PATH = [(0, 0), (1, 0), (2, 1), (3, 2), (3, 3)]


@pytest.mark.parametrize("band", [None, 1, 8])
def test_paper_example(band):
    path = dtw_align(PAPER_DRAFT, PAPER_TARGET, band)
    assert path == PAPER_PATH
    pairs = [(PAPER_DRAFT[i], PAPER_TARGET[j]) for i, j in path]
    assert pairs == [("S", "Scal"), ("cal", "Scal"), ("ing", "ing"), ("Law", "L"), ("Law", "aw")]


def test_paper_example_default_band():
    assert dtw_align(PAPER_DRAFT, PAPER_TARGET) == PAPER_PATH


def test_band_zero_forces_diagonal_for_equal_lengths():
    assert dtw_align(PAPER_DRAFT, PAPER_TARGET, band=0) == [(i, i) for i in range(4)]


def test_empty_inputs():
    assert dtw_align([], []) == []
    assert dtw_align(["a"], []) == []
    assert dtw_align([], ["a", "b"]) == []


def test_identical_sequences_align_diagonally():
    toks = ["The", " quick", " brown", " fox"]
    assert dtw_align(toks, toks) == [(i, i) for i in range(4)]


def test_diagonal_preferred_on_ties():
    # All local costs equal: the diagonal is one of the optimal moves and wins.
    assert dtw_align(["p", "q"], ["r", "s"]) == [(0, 0), (1, 1)]


def test_band_widened_to_length_difference():
    draft = list("abcdefghijklmnopqrst")
    target = ["abcdefghij", "klmnopqrst"]
    path = dtw_align(draft, target, band=1)
    check_path(path, 20, 2, 1)
    assert target_to_draft(path, 2) == [list(range(10)), list(range(10, 20))]


def test_negative_band_rejected():
    with pytest.raises(ValueError):
        dtw_align(["a"], ["a"], band=-1)


def test_accepts_tuples():
    assert dtw_align(tuple(PAPER_DRAFT), tuple(PAPER_TARGET)) == PAPER_PATH


token = st.text(alphabet="abc L", max_size=4)
tokens = st.lists(token, min_size=0, max_size=20)
bands = st.sampled_from([None, 0, 1, 4, 8])


@settings(max_examples=400, deadline=None)
@given(tokens, tokens, bands)
def test_dtw_path_is_valid_and_optimal(draft, target, band):
    path = dtw_align(draft, target, band)
    k, m = len(draft), len(target)
    if k == 0 or m == 0:
        assert path == []
        return
    check_path(path, k, m, band)
    C = ref_dtw_matrix(draft, target, band)
    assert path_cost(path, draft, target) == C[k][m]


@settings(max_examples=300, deadline=None)
@given(tokens, tokens, bands)
def test_dtw_backtrack_follows_documented_tie_order(draft, target, band):
    """Each step goes to a least-cost predecessor: diagonal first, then the move
    landing closer to i == j, then the draft step (i-1, j)."""
    path = dtw_align(draft, target, band)
    if not path:
        return
    C = ref_dtw_matrix(draft, target, band)
    for (i0, j0), (i1, j1) in itertools.pairwise(path):
        i, j = i1 + 1, j1 + 1  # 1-based cell we backtracked from
        diag, up, left = C[i - 1][j - 1], C[i - 1][j], C[i][j - 1]
        best = min(diag, up, left)
        if diag == best:
            want = (i - 1, j - 1)
        elif up < left:
            want = (i - 1, j)
        elif left < up:
            want = (i, j - 1)
        else:
            want = (i - 1, j) if abs(i - 1 - j) <= abs(i - (j - 1)) else (i, j - 1)
        assert (i0 + 1, j0 + 1) == want


# --- helpers ---------------------------------------------------------------------------


def test_target_to_draft_paper():
    assert target_to_draft(PAPER_PATH, 4) == [[0, 1], [2], [3], [3]]


def test_target_to_draft_one_to_many_and_empty():
    path = [(0, 0), (0, 1), (1, 2), (2, 2)]
    assert target_to_draft(path, 3) == [[0], [0], [1, 2]]
    assert target_to_draft([], 2) == [[], []]
    assert target_to_draft([], 0) == []


@pytest.mark.parametrize("n_acc,expected", [(0, 0), (1, 2), (2, 3), (3, 3), (4, 4), (9, 4)])
def test_covered_draft_prefix_paper(n_acc, expected):
    # d0 "S" and d1 "cal" both map only to t0 "Scal"; d3 "Law" needs t2 and t3.
    assert covered_draft_prefix(PAPER_PATH, n_acc, 4) == expected


def test_covered_draft_prefix_stops_at_first_uncovered():
    # d0 -> t0,t1 ; d1 -> t1 ; d2 -> t2
    path = [(0, 0), (0, 1), (1, 1), (2, 2)]
    assert covered_draft_prefix(path, 1, 3) == 0  # d0 only half covered
    assert covered_draft_prefix(path, 2, 3) == 2
    assert covered_draft_prefix(path, 3, 3) == 3


def test_covered_draft_prefix_edge_cases():
    assert covered_draft_prefix([], 5, 0) == 0
    assert covered_draft_prefix([], 5, 3) == 0  # unlinked draft tokens are not covered
    # draft_len shorter than the path: only the first draft_len tokens count.
    assert covered_draft_prefix(PAPER_PATH, 4, 2) == 2
