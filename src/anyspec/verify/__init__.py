"""Lossless verification: pure functions of the proposal, the target's logits and a generator."""

from ..trees import main_path_length
from .chain import accept_or_resample, verify_chain
from .laws import DenseLaw, DraftLaw, PointMass
from .tree import verify_tree

__all__ = ["DenseLaw", "DraftLaw", "PointMass", "accept_or_resample", "main_path_length",
           "verify_chain", "verify_tree"]
