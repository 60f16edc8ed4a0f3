"""What every method streams, and prompts that give the draft nothing to read, on toy models.

- The concatenated stream equals the generation's text, stop strings included: the piece
  before a stop string is streamed too.
- A prompt of control tokens only (no text) leaves the draft of a cross-vocabulary method with
  no ids; the round decodes plainly instead of crashing, and greedy output stays the target's.
"""

import numpy as np
import pytest
from synthetic import ToyModel, ToyTokenizer

from anyspec.config import GeneratorConfig
from anyspec.engine import SpeculativeGenerator
from anyspec.sampling import SamplingParams

SAME_PIECES = ["a", "b", "c", "d", " ", ""]  # the last: a control token, no text
TARGET_PIECES = ["a", "b", "c", "ab", "ca", " ", ""]
DRAFT_PIECES = ["a", "b", "c", "bc", "abc", " a", " "]
METHODS = ["ar", "sd", "slem", "tokentiming", "tli", "slrs"]
CONTROL = 6  # the id of "" (a control token) in TARGET_PIECES
SAME_CONTROL = 5  # ... and in SAME_PIECES


def generator(method: str, draft_length="adaptive") -> SpeculativeGenerator:
    if method == "sd":
        tok = ToyTokenizer(SAME_PIECES)
        target, draft = ToyModel(tok, seed=3, n_ctx=200), ToyModel(tok, seed=4, n_ctx=200)
    else:
        target = ToyModel(ToyTokenizer(TARGET_PIECES), seed=21, n_ctx=200)
        draft = ToyModel(ToyTokenizer(DRAFT_PIECES), seed=21, n_ctx=200)
    if method == "ar":
        return SpeculativeGenerator(target)
    return GeneratorConfig(method=method, draft_length=draft_length).build(target, draft)


@pytest.mark.parametrize("method", METHODS)
def test_the_stream_is_the_text_whatever_the_stop_strings(method):
    gen = generator(method)
    rng = np.random.default_rng(1)
    for trial in range(40):
        prompt = rng.integers(0, 5, size=int(rng.integers(1, 4))).tolist()
        params = SamplingParams(float(trial % 2), seed=trial)
        full = gen.generate(prompt, 24, params).text
        start = int(rng.integers(0, max(1, len(full) - 1)))
        stop = [full[start:start + int(rng.integers(1, 4))]] if full else []
        stream = gen.stream(prompt, 24, params, stop)
        pieces = list(stream)
        assert "".join(pieces) == stream.result.text, (prompt, stop)
        if stop:
            assert stream.result.text == full[:full.find(stop[0])], (prompt, stop)


@pytest.mark.parametrize("method", METHODS)
def test_a_prompt_with_no_text_decodes_as_the_target_alone(method):
    gen = generator(method)
    ar = generator("ar")
    control = SAME_CONTROL if method == "sd" else CONTROL
    for prompt in ([control], [control, control]):
        got = gen.generate(prompt, 20)
        want = (ar.generate(prompt, 20) if method != "sd"
                else SpeculativeGenerator(gen.target).generate(prompt, 20))
        assert got.token_ids == want.token_ids
        assert gen.generate(prompt, 8, SamplingParams(1.0, seed=0)).stats.new_tokens > 0


def test_a_long_prompt_is_read_in_chunks_with_a_chance_to_stop_between():
    """The stream yields an empty piece after each chunk of a long prompt's prefill, so a
    caller (the server, when its client went away) can close it before the whole prompt is
    read; closing it there runs nothing more."""
    from anyspec.engine import PREFILL_CHUNK

    target = ToyModel(ToyTokenizer(TARGET_PIECES), seed=21, n_ctx=4 * PREFILL_CHUNK)
    gen = SpeculativeGenerator(target)
    prompt = [0, 1, 2] * PREFILL_CHUNK  # 3 chunks
    pieces = iter(gen.stream(prompt, 4))
    assert next(pieces) == ""
    assert len(target.forwarded) == PREFILL_CHUNK
    pieces.close()
    assert len(target.forwarded) == PREFILL_CHUNK
    full = list(gen.stream(prompt, 4))
    assert full[:2] == ["", ""] and "".join(full) == gen.generate(prompt, 4).text
