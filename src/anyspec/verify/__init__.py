"""Lossless verification: pure functions of the proposal, the target's logits and the
generation's keyed draws (noise.py)."""

from ..trees import main_path_length
from .chain import TargetChoice, accepts, verify_chain
from .laws import DenseLaw, DraftLaw, PointMass
from .tree import verify_tree

__all__ = ["DenseLaw", "DraftLaw", "PointMass", "TargetChoice", "accepts", "main_path_length",
           "verify_chain", "verify_tree"]
