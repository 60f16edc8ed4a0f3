"""An output layer computed in slices of the vocabulary, for CPU verification passes."""

from __future__ import annotations

import torch


class VocabSlicedLinear(torch.nn.Module):
    """`linear(x)` computed 512 vocabulary rows at a time when x has 4 rows or more.

    Each slice of the weight stays in cache while every row of x uses it, so the weight is
    read from memory once per call. Fewer than 4 rows keep torch's own kernel, which is faster
    for them. The weight is shared with the layer replaced, so tied embeddings stay tied.
    """

    slice_rows = 512

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.weight, self.bias = linear.weight, linear.bias
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if rows.shape[0] < 4:
            return torch.nn.functional.linear(x, self.weight, self.bias)
        out = rows.new_empty(rows.shape[0], self.out_features)
        for s in range(0, self.out_features, self.slice_rows):
            torch.mm(rows, self.weight[s:s + self.slice_rows].t(), out=out[:, s:s + self.slice_rows])
        if self.bias is not None:
            out += self.bias
        return out.reshape(*x.shape[:-1], self.out_features)
