"""Lossless acceptance rules (algorithms.md section 0). Pure functions over numpy arrays."""

from .chain import accept_or_resample, verify_chain
from .tree import main_path_length, verify_tree

__all__ = ["accept_or_resample", "main_path_length", "verify_chain", "verify_tree"]
