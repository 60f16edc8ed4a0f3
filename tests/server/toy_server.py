"""`anyspec serve`'s app in-process over the tiny toy models of tests/synthetic.py, for tests
of the HTTP layer in the default tier: no model files, no subprocess."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from fastapi.testclient import TestClient
from synthetic import ToyModel

from anyspec.config import GeneratorConfig
from anyspec.models.base import Tokenizer
from anyspec.server.app import ServerConfig, create_app
from anyspec.server.worker import Worker

MODEL = "toy"  # the served model name
UNKNOWN = b"?"  # the piece standing for any byte no other piece covers
# The target and draft vocabularies differ, as in the embedded pair; the last target piece
# is a control token (no text), the end of generation.
TARGET_PIECES = [b"a", b"b", b"c", b"ab", b"ca", b" ", "é".encode(), UNKNOWN, b""]
DRAFT_PIECES = [b"a", b"b", b"c", b"bc", b"abc", b" a", b" ", "é".encode(), UNKNOWN]
# the same, but the target spells "é" with two byte tokens, half a character each, as
# byte-fallback vocabularies do: it can generate bytes that are not UTF-8 text
SPLIT_TARGET_PIECES = [b"a", b"b", b"c", b"ab", b"ca", b" ", b"\xc3", b"\xa9", UNKNOWN, b""]


class CoveringTokenizer(Tokenizer):
    """Tokens are fixed byte strings; like a real tokenizer it encodes any text: the text
    goes to UTF-8 (a lone surrogate cannot), then splits greedily on the longest piece, and a
    byte no piece starts with becomes UNKNOWN."""

    def __init__(self, pieces: list[bytes], eos: int | None = None) -> None:
        self.pieces = pieces
        self.vocab_size = len(pieces)
        self.bos_id = None
        self.eos_ids = frozenset() if eos is None else frozenset([eos])
        self._by_length = sorted((t for t in range(len(pieces)) if pieces[t]), key=lambda t: -len(pieces[t]))

    def encode(self, text: str, add_special: bool = True, parse_special: bool = False) -> list[int]:
        data, ids, i = text.encode("utf-8"), [], 0
        while i < len(data):
            t = next((t for t in self._by_length if data.startswith(self.pieces[t], i)),
                     self.pieces.index(UNKNOWN))
            ids.append(t)
            i += len(self.pieces[t]) if t != self.pieces.index(UNKNOWN) or data.startswith(UNKNOWN, i) else 1
        return ids

    def _token_bytes(self, token: int) -> bytes:
        return self.pieces[token]


def toy_models(split_bytes: bool = False, n_ctx: int = 64) -> tuple[ToyModel, ToyModel]:
    pieces = SPLIT_TARGET_PIECES if split_bytes else TARGET_PIECES
    target = ToyModel(CoveringTokenizer(pieces, eos=len(pieces) - 1), seed=21, n_ctx=n_ctx, name="toy-target")
    draft = ToyModel(CoveringTokenizer(DRAFT_PIECES), seed=22, n_ctx=n_ctx, name="toy-draft")
    return target, draft


def toy_app(max_queue: int = 4, options: GeneratorConfig = GeneratorConfig(), split_bytes: bool = False,
            **config):
    """The app and its worker; config: ServerConfig fields besides model_name and warm_up."""
    target, draft = toy_models(split_bytes)
    worker = Worker(target, draft, options, max_queue)
    return create_app(worker, ServerConfig(model_name=MODEL, warm_up=False, **config)), worker


@contextlib.contextmanager
def toy_client(**kwargs) -> Iterator[TestClient]:
    """A TestClient over toy_app(**kwargs), its lifespan run (the worker closes at the end).
    Server errors come back as responses (500), not as exceptions in the test."""
    app, _ = toy_app(**kwargs)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


def sse_events(text: str) -> list[str]:
    """The data of each server-sent event in a response body, [DONE] included."""
    return [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]


def sse_json(text: str) -> list[dict]:
    """The JSON events of a streamed response (all but [DONE])."""
    return [json.loads(e) for e in sse_events(text) if e != "[DONE]"]


def is_openai_error(body) -> bool:
    """{"error": {"message": non-empty str, "type": str, "param": str|None, "code": str|None}}"""
    if not isinstance(body, dict) or set(body) != {"error"} or not isinstance(body["error"], dict):
        return False
    e = body["error"]
    return (set(e) == {"message", "type", "param", "code"} and isinstance(e["message"], str)
            and bool(e["message"]) and isinstance(e["type"], str)
            and all(e[k] is None or isinstance(e[k], str) for k in ("param", "code")))
