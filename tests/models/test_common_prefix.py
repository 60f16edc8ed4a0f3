"""common_prefix_length decides how much of a model's cache a call keeps: it must equal the
plain definition on every shape its fast paths take (one list extending the other, a
different last token, a mismatch earlier)."""

import numpy as np

from anyspec.models.base import common_prefix_length


def _plain(a, b):
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def test_common_prefix_length_equals_the_plain_definition():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        a = rng.integers(0, 3, int(rng.integers(0, 12))).tolist()
        tail = rng.integers(0, 3, int(rng.integers(0, 4))).tolist()
        b = a[:int(rng.integers(0, len(a) + 1))] + tail
        if len(a) and rng.random() < 0.3:
            b = a[:-1] + [a[-1] + 1]  # another token at the last position
        assert common_prefix_length(a, b) == _plain(a, b), (a, b)
        assert common_prefix_length(b, a) == _plain(a, b), (b, a)
