"""Draft-length controllers. The engine asks `k()` before a round and reports `observe()` after.

Fixed: always k. Adaptive: the heuristic transformers uses for assisted generation (+2 after a
round where every draft token was accepted, -1 otherwise, never below 1), kept here as a
simple, known baseline.
"""

from __future__ import annotations

from ..errors import AnyspecError


class FixedDraftLength:
    def __init__(self, k: int) -> None:
        self._k = k

    def k(self) -> int:
        return self._k

    def observe(self, drafted: int, accepted: int) -> None:
        pass

    def describe(self) -> str:
        return f"fixed k={self._k}"


class AdaptiveDraftLength:
    def __init__(self, start: int = 4, max_k: int = 16) -> None:
        self._k = start
        self.max_k = max_k

    def k(self) -> int:
        return self._k

    def observe(self, drafted: int, accepted: int) -> None:
        if drafted == 0:
            return
        if accepted == drafted:
            self._k = min(self._k + 2, self.max_k)
        else:
            self._k = max(1, self._k - 1)

    def describe(self) -> str:
        return "adaptive (+2 when all accepted, else -1)"


def make_controller(draft_length: str | int):
    """'auto' -> adaptive; an integer (or its string) -> fixed."""
    if draft_length in ("auto", None):
        return AdaptiveDraftLength()
    try:
        k = int(draft_length)
    except (TypeError, ValueError):
        raise AnyspecError(f"draft length must be 'auto' or an integer >= 1, got {draft_length!r}") from None
    if k < 1:
        raise AnyspecError(f"draft length must be 'auto' or an integer >= 1, got {k}")
    return FixedDraftLength(k)
