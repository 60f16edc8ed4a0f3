"""The shape of a token tree: node i hangs from parents[i] (-1: from the committed ids),
parents before children. Shared by the proposers that grow trees, the models that run them
in one pass and the verifier that walks them; it depends on nothing else in anyspec."""

from __future__ import annotations

from collections.abc import Sequence


def children_of(parents: Sequence[int]) -> list[list[int]]:
    """children[i + 1]: the nodes whose parent is i, in order; children[0]: the root's."""
    children: list[list[int]] = [[] for _ in range(len(parents) + 1)]
    for node, parent in enumerate(parents):
        if not -1 <= parent < node:
            raise ValueError(f"node {node} has parent {parent}: parents must come first")
        children[parent + 1].append(node)
    return children


def depths(parents: Sequence[int]) -> list[int]:
    """Each node's depth: 1 for a child of the root."""
    out: list[int] = []
    for parent in parents:
        out.append(1 if parent < 0 else out[parent] + 1)
    return out


def main_path_length(parents: Sequence[int]) -> int:
    """How many leading nodes form a chain from the root (node i the child of node i - 1):
    the nodes a tree pass leaves in a cache that holds one sequence."""
    n = 0
    while n < len(parents) and parents[n] == n - 1:
        n += 1
    return n
