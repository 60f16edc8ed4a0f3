"""The loaded models and the one thread that runs them.

The engine is not thread-safe, so every engine call (building a proposer, each step of a
generation) runs on one worker thread, and a request holds the engine for its whole
generation (an asyncio.Lock, FIFO). Requests beyond the one running wait in a bounded queue;
past the bound `admit` answers 429 at once. A generation is driven one text piece at a time
from the event loop, so between rounds the server can notice a client that went away, or a
shutdown deadline, and stop: the engine is free again at the next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

from ..config import METHODS, GeneratorConfig
from ..engine import Generation, SpeculativeGenerator
from ..errors import AnyspecError
from ..sampling import SamplingParams
from .protocol import RequestError

KEPT_GENERATORS = 8  # generators a server keeps, the most recently used


def build_generator(target, draft, config: GeneratorConfig,
                    cache: OrderedDict | None = None) -> SpeculativeGenerator:
    """The generator for a request's config: the one in `cache` built for the same config, so
    that what it learns carries from one request to the next (auto's and hybrid's measured
    costs and acceptance, suffix's earlier outputs), else a new one, kept there in place of
    the least recently used when `KEPT_GENERATORS` are kept (each suffix history holds up to
    2 MB)."""
    if cache is None:
        return config.build(target, draft)
    if config not in cache:
        cache[config] = config.build(target, draft)
        while len(cache) > KEPT_GENERATORS:
            cache.popitem(last=False)
    cache.move_to_end(config)
    return cache[config]


def method_problems(target, draft, config: GeneratorConfig) -> dict[str, str]:
    """method -> why it cannot run with these models (checked once, at startup)."""
    problems = {}
    for method in METHODS:
        try:
            build_generator(target, draft, config.for_method(method))
        except Exception as e:  # noqa: BLE001 - any reason makes the method unavailable here
            problems[method] = str(e) if isinstance(e, AnyspecError) else f"{type(e).__name__}: {e}"
    return problems


class Worker:
    def __init__(self, target, draft, options: GeneratorConfig, max_queue: int) -> None:
        """options: the server's generator config; a request may choose another method and
        draft length."""
        self.target, self.draft, self.options = target, draft, options
        self.max_queue = max_queue
        self.default_method = options.resolve_method(target, draft)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anyspec-engine")
        # used on _thread only
        self.generators: OrderedDict[GeneratorConfig, SpeculativeGenerator] = OrderedDict()
        self._lock = asyncio.Lock()
        self.admitted = 0  # requests holding a place: running, waiting, or about to wait
        self.running = 0
        self.waiting = 0
        self.stop_at: float | None = None  # shutdown deadline (time.monotonic)
        self.mean_seconds = 1.0  # moving average of a request's engine time, for Retry-After

    # --- the queue -------------------------------------------------------------------------
    def admit(self) -> None:
        """Take a place in the queue, or answer 503 (shutting down) / 429 (queue full)."""
        if self.stop_at is not None:
            raise RequestError(503, "the server is shutting down", None, "shutting_down", "server_error")
        if self.admitted >= 1 + self.max_queue:
            retry = retry_after_seconds(self.waiting, self.mean_seconds)
            raise RequestError(429, f"the server is busy: {self.waiting} requests are waiting for the "
                                    f"engine (at most {self.max_queue}); retry in about {retry} s",
                               None, "queue_full", "rate_limit_error", {"Retry-After": str(retry)})
        self.admitted += 1

    def leave(self) -> None:
        self.admitted -= 1

    @contextlib.asynccontextmanager
    async def turn(self):
        """Wait (FIFO) for the engine, then hold it for a whole request."""
        self.waiting += 1
        try:
            await self._lock.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        started = time.monotonic()
        try:
            yield
        finally:
            self.running -= 1
            self._lock.release()
            self.mean_seconds = 0.8 * self.mean_seconds + 0.2 * (time.monotonic() - started)

    # --- generating ------------------------------------------------------------------------
    async def generate(self, prompt_ids: list[int], max_tokens: int, sampling: SamplingParams,
                       stop: list[str], method: str | None, draft_length) -> AsyncIterator[str | Generation]:
        """Text pieces as they are committed, then the Generation. Call inside `turn()`.

        Closing this iterator early (a disconnect) abandons the generation: the round in
        progress finishes on the worker thread, and nothing more runs for it.
        """
        loop = asyncio.get_running_loop()
        config = self.options.for_method(method or self.default_method, draft_length)

        def start():
            gen = build_generator(self.target, self.draft, config, self.generators)
            stream = gen.stream(prompt_ids, max_tokens, sampling, stop)
            return stream, iter(stream)

        stream, pieces = await loop.run_in_executor(self._thread, start)
        try:
            while True:
                self._check_deadline()
                piece = await loop.run_in_executor(self._thread, next, pieces, None)
                if piece is None:
                    break
                yield piece
        finally:
            with contextlib.suppress(RuntimeError):  # RuntimeError: the thread is shut down
                self._thread.submit(pieces.close)  # on the worker thread: never while it runs
        yield stream.result

    def _check_deadline(self) -> None:
        if self.stop_at is not None and time.monotonic() >= self.stop_at:
            raise RequestError(503, "the server is shutting down; this generation was stopped",
                               None, "shutting_down", "server_error")

    async def warm_up(self) -> None:
        """One short generation, so the first request does not pay for building tables."""
        loop = asyncio.get_running_loop()
        config = self.options.for_method(self.default_method)
        await loop.run_in_executor(self._thread, lambda: build_generator(
            self.target, self.draft, config).generate("Hello", 2))

    def begin_shutdown(self, timeout: float) -> None:
        """From now on: refuse new requests; stop generations still running after `timeout`."""
        if self.stop_at is None:
            self.stop_at = time.monotonic() + timeout

    def close(self) -> None:
        self._thread.shutdown(wait=True, cancel_futures=True)


def retry_after_seconds(waiting: int, mean_seconds: float) -> int:
    """A guess at when a place frees up: the queue ahead times the mean request time."""
    return max(1, min(120, math.ceil((waiting + 1) * mean_seconds)))
