"""TokenTiming dynamic-time-warping alignment of draft and target tokens.

Pure functions, no models (TokenTiming, arXiv 2510.15545, section 3).  The draft
and target models use different vocabularies, so a draft token sequence is
mapped onto the target token sequence by DTW over the tokens' surface strings,
with the Levenshtein distance between two token strings as the local cost.

Conventions:
  * Inputs are plain, already normalised strings (a space is a real ' ');
    `normalise_token_text` strips a leading space marker for callers that
    still hold raw vocabulary pieces.
  * Paths are lists of 0-based (draft_index, target_index) pairs, monotone,
    starting at (0, 0) and ending at (k-1, m-1).  If either side is empty there
    is nothing to align and the path is [].
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rapidfuzz.distance import Levenshtein

__all__ = [
    "covered_draft_prefix",
    "dtw_align",
    "edit_distance",
    "normalise_token_text",
    "target_to_draft",
]

_SPACE_MARKERS = ("\u2581", "\u0120", " ")  # SentencePiece '▁', byte-level BPE 'Ġ', plain space


def normalise_token_text(s: str) -> str:
    """Strip one leading space marker ('▁', 'Ġ' or ' ') from a token string."""
    if s and s[0] in _SPACE_MARKERS:
        return s[1:]
    return s


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance with unit insert / delete / substitute costs."""
    return Levenshtein.distance(a, b)


def dtw_align(
    draft: Sequence[str], target: Sequence[str], band: int | None = 8
) -> list[tuple[int, int]]:
    """Optimal DTW path between draft and target token strings.

    C(0,0)=0, C(i,0)=C(0,j)=inf, C(i,j) = ed(d_i,t_j) + min(C(i-1,j), C(i,j-1),
    C(i-1,j-1)), restricted to the Sakoe-Chiba band |i-j| <= max(band, |k-m|)
    (band=None: no band).  Widening the band to |k-m| guarantees a path exists.

    Backtracking from (k,m) picks the predecessor of least cost; ties go to
    (1) the diagonal (i-1,j-1), then (2) whichever of (i-1,j) / (i,j-1) lands
    closer to the i=j line (the band's centre), then (3) (i-1,j), i.e. stepping
    back in the draft.  Returns [] if either side is empty.
    """
    k = len(draft)
    m = len(target)
    if k == 0 or m == 0:
        return []
    if band is not None and band < 0:
        raise ValueError(f"band must be >= 0 or None, got {band}")
    w = max(k, m) if band is None else max(band, abs(k - m))

    # cost[i][j] = C(i, j), 1-based in both sequences; cells outside the band stay inf.
    cost = [[math.inf] * (m + 1) for _ in range(k + 1)]
    cost[0][0] = 0
    for i in range(1, k + 1):
        for j in range(max(1, i - w), min(m, i + w) + 1):
            best = min(cost[i - 1][j - 1], cost[i - 1][j], cost[i][j - 1])
            cost[i][j] = edit_distance(draft[i - 1], target[j - 1]) + best

    i, j = k, m
    path = [(k - 1, m - 1)]
    while i > 1 or j > 1:
        diag = cost[i - 1][j - 1]
        up = cost[i - 1][j]
        left = cost[i][j - 1]
        if diag <= up and diag <= left:
            i -= 1
            j -= 1
        elif up < left or (up == left and i >= j):
            # On an up/left tie: i > j means stepping back in the draft moves
            # toward the diagonal; i == j is a true tie, broken toward the draft.
            i -= 1
        else:
            j -= 1
        path.append((i - 1, j - 1))
    path.reverse()
    return path


def covered_draft_prefix(
    path: Sequence[tuple[int, int]], n_target_accepted: int, draft_len: int
) -> int:
    """Number of leading draft tokens fully covered by the accepted target prefix.

    Draft token i counts if every target index linked to it is
    < n_target_accepted; counting stops at the first draft token that is not
    fully covered (or has no link at all, which a full path never produces).
    """
    # A monotone path visits a draft index's links in increasing target order,
    # so the last link seen is the largest.
    last = [-1] * draft_len
    for i, j in path:
        if i < draft_len:
            last[i] = j
    n = 0
    for j in last:
        if j < 0 or j >= n_target_accepted:
            break
        n += 1
    return n


def target_to_draft(path: Sequence[tuple[int, int]], m: int) -> list[list[int]]:
    """For each target index 0..m-1, the draft indices linked to it (ascending)."""
    out: list[list[int]] = [[] for _ in range(m)]
    for i, j in path:
        if j < m:
            out[j].append(i)
    return out
