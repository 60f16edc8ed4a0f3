"""How to decode, as one object: the method, its draft length and the methods' options.

`anyspec generate`, `anyspec serve` and `anyspec bench` build a GeneratorConfig from their
options, and a library user builds one in code:

    config = GeneratorConfig(method="tokentiming", draft_length=4).validate()
    generator = config.build(target, draft)
    print(generator.generate("The capital of France is", 32).text)

`validate` checks everything that needs no model, so a mistake is reported before minutes of
loading; `build` checks what depends on the models (a shared vocabulary for sd, a backend that
can verify trees) and puts the proposer and the engine together.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .control import draft_stop_below, make_controller
from .engine import SpeculativeGenerator
from .errors import AnyspecError
from .models.base import LanguageModel
from .proposers import NoProposer, Proposer
from .proposers.draft_chain import DraftChainProposer, check_same_vocabulary
from .proposers.hybrid import HybridProposer
from .proposers.intersection import IntersectionProposer
from .proposers.lookup import LookupProposer
from .proposers.retokenize import RetokenizingProposer
from .proposers.string_rejection import StringRejectionProposer

# method name -> (needs a draft, what it is); the CLI's --help is built from this table
METHODS = {
    "ar": (False, "target only, one token per pass (the baseline)"),
    "sd": (True, "standard speculative decoding; draft and target share a vocabulary"),
    "slem": (True, "any vocabularies: draft text re-tokenized for the target, exact match"),
    "tokentiming": (True, "as slem, plus DTW alignment carrying draft confidence to target tokens"),
    "tli": (True, "any vocabularies: draft restricted to tokens both vocabularies share"),
    "slrs": (True, "any vocabularies: string-level rejection sampling over the draft's "
                   "segmentations of each target token (more draft passes, higher acceptance "
                   "when sampling; greedy, it proposes as slem)"),
    "lookup": (False, "no draft model: propose what followed the latest earlier match of the "
                      "text's last 2-4 tokens in the prompt and output (prompt lookup)"),
    "suffix": (False, "no draft model: as lookup, also matching this generator's (a server's) "
                      "earlier prompts and outputs (SuffixDecoding)"),
    "hybrid": (True, "each round, the plan with the most expected tokens per second from "
                     "measured costs: suffix lookup, the draft model (sd or tokentiming), both "
                     "as one token tree (hf target), or plain decoding"),
}
MODEL_FREE = ("lookup", "suffix")
CROSS_VOCABULARY = ("tokentiming", "slem", "tli", "slrs")
# slrs draws strings: chains only; lookup and suffix draft a tree of their matches wherever
# the target verifies trees; hybrid makes its own
TREE_METHODS = ("sd", "tli", "slem", "tokentiming", "lookup", "suffix")
LOOKUP_TREE = 16  # lookup, suffix: the tree's tokens when --tree does not say
HYBRID_MAX_K = 16  # hybrid: the most tokens a plan drafts when the draft length is auto
# how a draft that samples (sd, tli, slrs) meets the target's randomness (noise.py):
COUPLING = {
    "auto": "on when a seed is given, off when not",
    "on": "the draft samples with the target's per-position noise and its tokens are verified "
          "as point masses: a seed gives target-only output, whatever the method",
    "off": "the draft samples with its own noise and min(1, q/p) verifies it (the standard "
           "rejection rule)",
}


@dataclass(frozen=True)
class GeneratorConfig:
    method: str = "auto"  # auto: hybrid (with --tree: the pair's model method); ar without a draft
    draft_length: int | str = "auto"  # "auto" (cost-aware), "adaptive" (+2/-1) or a fixed k
    draft_stop_below: float | None = None  # None: 0.4 when the length adapts (control/)
    sampled_drafting: bool = False  # slem, tokentiming: sample the draft instead of its argmax
    dtw_band: int = 8  # tokentiming: the Sakoe-Chiba band of the DTW alignment
    min_confidence: float = 0.05  # tokentiming: propose while the aligned confidence stays >= it
    draft_window: int | None = None  # cross-vocabulary methods: draft tokens of a prompt read
    tree: int | str | None = None  # TREE_METHODS: a token tree of this many tokens, or "auto"
    coupling: str = "auto"  # COUPLING

    def validate(self) -> GeneratorConfig:
        """The same config with draft_length and tree parsed (a number given as text becomes
        an int), after checking every option that needs no model."""
        if self.method != "auto" and self.method not in METHODS:
            raise AnyspecError(f"unknown method '{self.method}': choose one of auto, "
                               f"{', '.join(METHODS)}")
        make_controller(self.draft_length)  # raises on anything but auto, adaptive or k >= 1
        draft_length = self.draft_length
        if draft_length not in ("auto", "adaptive"):
            draft_length = int(draft_length)
        for name in ("draft_stop_below", "min_confidence"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1:
                raise AnyspecError(f"{name} must be a probability in [0, 1], got {value!r}")
        if not isinstance(self.dtw_band, int) or self.dtw_band < 1:
            raise AnyspecError(f"dtw_band must be an integer >= 1, got {self.dtw_band!r}")
        if self.draft_window is not None and (not isinstance(self.draft_window, int)
                                              or self.draft_window < 1):
            raise AnyspecError(f"draft_window must be at least 1 token, got {self.draft_window!r}")
        if self.draft_window is not None and self.method in ("sd", *MODEL_FREE):
            raise AnyspecError("a draft window applies to the cross-vocabulary methods "
                               f"({', '.join(CROSS_VOCABULARY)}, hybrid); {self.method} reads "
                               "the target's ids")
        if self.coupling not in COUPLING:
            raise AnyspecError(f"coupling must be one of {', '.join(COUPLING)}, "
                               f"got {self.coupling!r}")
        tree = _parse_tree(self.tree)
        if tree is not None and self.method == "hybrid":
            raise AnyspecError("hybrid takes no tree setting: it makes its own trees (suffix "
                               "lookup and the draft model as two branches, hf target)")
        if tree is not None and self.method not in ("auto", *TREE_METHODS):
            raise AnyspecError(f"trees work with {', '.join(TREE_METHODS)}; "
                               f"{self.method} drafts chains only")
        return replace(self, draft_length=draft_length, tree=tree)

    def for_method(self, method: str, draft_length: int | str | None = None) -> GeneratorConfig:
        """This config for another method (and draft length, if given), less the options that
        method does not take: a server or a benchmark applies one tree setting to the methods
        that draft trees, and one draft window to those that re-encode the prompt."""
        return replace(self, method=method, draft_length=draft_length or self.draft_length,
                       tree=self.tree if method in ("auto", *TREE_METHODS) else None,
                       draft_window=None if method in ("sd", *MODEL_FREE) else self.draft_window)

    def resolve_method(self, target: LanguageModel, draft: LanguageModel | None) -> str:
        """The method `auto` stands for with these models."""
        if self.method != "auto":
            return self.method
        if draft is None:
            return "ar"
        if self.tree is not None:  # a tree setting asks for the draft model's trees
            return model_method(target, draft)
        return "hybrid"

    def proposer(self, target: LanguageModel, draft: LanguageModel | None = None) -> Proposer:
        """The proposer for the method; the checks say what to change when the pair does not
        fit."""
        config = self.validate()
        method = config.resolve_method(target, draft)
        if method == "ar":
            return NoProposer()
        if method in MODEL_FREE:
            tree = config.tree if isinstance(config.tree, int) else LOOKUP_TREE
            return LookupProposer(target, history=method == "suffix", tree_budget=tree)
        if draft is None:
            raise AnyspecError(f"method {method} needs a draft model")
        if method == "hybrid":  # suffix lookup and the pair's own model method
            model = replace(config, method=model_method(target, draft), draft_length="auto",
                            tree=None)
            return HybridProposer(LookupProposer(target, history=True, tree_budget=LOOKUP_TREE),
                                  model.proposer(target, draft), target)
        if config.tree is not None and not target.supports_trees:
            raise AnyspecError(target.no_trees_message())
        stop_below = draft_stop_below(config.draft_stop_below, config.draft_length, method)
        if method == "sd":
            return DraftChainProposer(draft, target, stop_below=stop_below, tree_budget=config.tree)
        if method == "tli":
            return IntersectionProposer(draft, target, stop_below=stop_below,
                                        draft_window=config.draft_window, tree_budget=config.tree)
        if method == "slrs":
            return StringRejectionProposer(draft, target, stop_below=stop_below,
                                           draft_window=config.draft_window)
        return RetokenizingProposer(draft, target, method,
                                    sampled_drafting=config.sampled_drafting,
                                    stop_below=stop_below, band=config.dtw_band,
                                    min_confidence=config.min_confidence,
                                    draft_window=config.draft_window, tree_budget=config.tree)

    def build(self, target: LanguageModel,
              draft: LanguageModel | None = None) -> SpeculativeGenerator:
        """The generator: the target, the method's proposer and the draft-length controller."""
        config = self.validate()
        proposer = config.proposer(target, draft)
        draft_length = config.draft_length
        if proposer.name == "hybrid" and draft_length == "auto":
            draft_length = HYBRID_MAX_K  # its plans choose their own lengths, up to this
        return SpeculativeGenerator(target, proposer, draft_length, config.coupling)


def model_method(target: LanguageModel, draft: LanguageModel) -> str:
    """The draft-model method for a pair: sd when the vocabularies match, else tokentiming."""
    try:
        check_same_vocabulary(draft, target)
        return "sd"
    except AnyspecError:
        return "tokentiming"


def _parse_tree(value: str | int | None) -> int | str | None:
    """None (chains), "auto" (sized by measured costs) or a number of tokens >= 1."""
    if value is None or value == "auto":
        return value
    try:
        budget = int(value)
    except (TypeError, ValueError):
        budget = 0
    if budget < 1 or isinstance(value, (float, bool)):
        raise AnyspecError(f"tree must be auto or a number of tokens >= 1, got {value!r}")
    return budget
