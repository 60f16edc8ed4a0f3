import numpy as np
import pytest

from anyspec import fast_exp
from anyspec.fast_exp import exp_sum


def test_the_pinned_llama_cpp_ships_ggmls_vectorised_softmax():
    """The fast path is not silently lost: llama-cpp-python==0.3.36 exports the symbol."""
    assert fast_exp._ggml_soft_max() is not None


@pytest.mark.parametrize("path", ["ggml", "numpy"])
@pytest.mark.parametrize("width", [5, 13, 49152, 262147])  # tails past the 8-wide loop
def test_exp_sum_is_exp_in_place_and_its_float64_sum(path, width, monkeypatch):
    if path == "numpy":
        monkeypatch.setattr(fast_exp, "_ggml_soft_max", lambda: None)
    rng = np.random.default_rng(width)
    row = rng.normal(0.0, 5.0, width).astype(np.float32)
    row[rng.integers(width, size=3)] = -np.inf  # masked tokens become 0
    row[0] = row.max() - 200.0  # underflows to 0
    shift = float(row.max())
    exact = np.exp(row.astype(np.float64) - shift)
    total = exp_sum(row, shift)
    assert total == pytest.approx(exact.sum(), rel=1e-6)
    np.testing.assert_allclose(row, exact, rtol=5e-6, atol=1e-30)  # ggml's expf: 2.1e-6 seen


def test_rows_the_c_loop_cannot_take_go_through_numpy():
    """float64 and strided rows are not what the C signature reads: numpy handles them."""
    row = np.array([0.0, -1.0, -2.0, 1.0], dtype=np.float64)
    assert exp_sum(row, 1.0) == pytest.approx(np.exp([-1.0, -2.0, -3.0, 0.0]).sum())
    strided = np.array([0.0, 9.0, -1.0, 9.0, 1.0, 9.0], dtype=np.float32)[::2]
    assert exp_sum(strided, 1.0) == pytest.approx(np.exp([-1.0, -2.0, 0.0]).sum(), rel=1e-6)


def test_a_row_of_a_matrix_is_exponentiated_where_it_lies():
    """The C loop gets the row's own address, not its base array's (rows[1] starts 3 in)."""
    rows = np.array([[5.0, 5.0, 5.0], [0.0, -1.0, 1.0]], dtype=np.float32)
    assert exp_sum(rows[1], 1.0) == pytest.approx(np.exp([-1.0, -2.0, 0.0]).sum(), rel=1e-6)
    np.testing.assert_allclose(rows, [[5.0, 5.0, 5.0], np.exp([-1.0, -2.0, 0.0])], rtol=5e-6)


def test_a_read_only_row_is_refused_and_left_as_it_was():
    row = np.array([0.0, -1.0, 1.0], dtype=np.float32)
    row.flags.writeable = False
    with pytest.raises(ValueError):
        exp_sum(row, 1.0)
    np.testing.assert_array_equal(row, [0.0, -1.0, 1.0])
