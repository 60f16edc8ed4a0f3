"""Lossless acceptance rules (algorithms.md section 0). Pure functions over numpy arrays."""

from .chain import accept_or_resample, verify_chain

__all__ = ["accept_or_resample", "verify_chain"]
