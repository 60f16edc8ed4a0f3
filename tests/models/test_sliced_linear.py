"""The vocabulary-sliced output layer computes what torch's linear computes, for any row count."""

import pytest
import torch

from anyspec.models.sliced_linear import VocabSlicedLinear


@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("rows", [1, 3, 4, 5, 9, 16])
def test_equals_linear(rows, bias):
    torch.manual_seed(rows)
    linear = torch.nn.Linear(64, 1300, bias=bias)  # 1300: the last slice is a partial one
    sliced = VocabSlicedLinear(linear)
    x = torch.randn(1, rows, 64)
    with torch.inference_mode():
        got, want = sliced(x), linear(x)
    assert got.shape == want.shape == (1, rows, 1300)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_shares_the_weight():
    linear = torch.nn.Linear(8, 600, bias=False)
    assert VocabSlicedLinear(linear).weight is linear.weight
