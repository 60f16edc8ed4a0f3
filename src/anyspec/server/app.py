"""The HTTP app: OpenAI-compatible routes over one Worker.

    POST /v1/completions, POST /v1/chat/completions   (stream: true -> server-sent events)
    GET  /v1/models, /v1/models/{id}, /health, /metrics

A request is checked (protocol.py), tokenized and fitted to the context before it takes a
place in the queue, so bad input costs no engine time; then it waits for the engine (worker.py)
and generates its n choices one after another.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from contextlib import aclosing
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..config import METHODS
from ..engine import Generation
from ..errors import AnyspecError
from . import protocol as P
from .metrics import ServerMetrics
from .templates import (
    PLAIN_TEMPLATE,
    TemplateError,
    choose_template,
    render_chat,
    stop_strings,
)
from .worker import Worker, method_problems

log = logging.getLogger("anyspec.server")
ENDPOINTS = ("/v1/completions", "/v1/chat/completions", "/v1/models", "/health", "/metrics")


@dataclass
class ServerConfig:
    model_name: str
    max_body_bytes: int = 1 << 20
    body_timeout: float = 30.0  # seconds to receive a whole request body; slower gets 408
    default_max_tokens: int = 256
    max_n: int = 8
    api_key: str | None = None
    chat_template: str | None = None  # a template file, "plain", or None: the target's own
    warm_up: bool = True
    started: int = field(default_factory=lambda: int(time.time()))


@dataclass
class Job:
    """A checked request, ready for the engine."""

    req: P.GenerationRequest
    prompt_ids: list[int]
    max_tokens: int
    stop: list[str]
    arrived: float  # time.monotonic()
    id: str


def create_app(worker: Worker, config: ServerConfig) -> FastAPI:
    metrics = ServerMetrics(config.model_name)
    target = worker.target
    template, template_source = choose_template(target.tokenizer.chat_template, config.chat_template)
    limits = P.Limits(models=(config.model_name,), n_ctx=target.n_ctx, vocab_size=target.vocab_size,
                      methods=("auto", *METHODS), max_n=config.max_n,
                      unavailable=method_problems(worker.target, worker.draft, worker.options))
    if worker.default_method in limits.unavailable:  # say so now, not at the first request
        raise AnyspecError(f"method {worker.default_method}: {limits.unavailable[worker.default_method]}")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        if config.warm_up:
            await worker.warm_up()
        log.info("serving %s (draft %s, default method %s, chat template: %s)", target.describe(),
                 worker.draft.describe() if worker.draft else "none", worker.default_method, template_source)
        yield
        await asyncio.to_thread(worker.close)  # let the round in progress finish

    app = FastAPI(title="anyspec", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.add_middleware(CountResponses, metrics=metrics)

    @app.exception_handler(P.RequestError)
    async def request_error(request: Request, e: P.RequestError):
        return ErrorResponse(e.body(), e.status, headers=e.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, e: StarletteHTTPException):
        message = f"no route {request.method} {request.url.path}" if e.status_code in (404, 405) else str(e.detail)
        return ErrorResponse(P.error_body(message, code=str(e.status_code)), e.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, e: Exception):
        log.exception("unexpected error")
        return ErrorResponse(P.error_body(f"internal error: {type(e).__name__}: {e}", "server_error",
                                          code="internal_error"), 500)

    @app.get("/health")
    async def health():
        if worker.stop_at is not None:
            return JSONResponse({"status": "shutting down"}, 503)
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics_text():
        return Response(metrics.render(worker.running, worker.waiting, worker.max_queue),
                        media_type=CONTENT_TYPE_LATEST)

    @app.get("/v1/models")
    async def models(request: Request):
        check_api_key(request)
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    async def model(name: str, request: Request):
        check_api_key(request)
        if name != config.model_name:
            raise P.RequestError(404, f"the model '{name}' does not exist on this server; it serves: "
                                      f"{config.model_name}", "model", "model_not_found")
        return model_card()

    @app.post("/v1/completions")
    async def completions(request: Request):
        return await serve(request, "completion")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        return await serve(request, "chat")

    def model_card() -> dict:
        return {"id": config.model_name, "object": "model", "created": config.started,
                "owned_by": "anyspec", "max_model_len": target.n_ctx,
                "draft": worker.draft.name if worker.draft else None,
                "default_method": worker.default_method,
                "methods": [m for m in METHODS if m not in limits.unavailable]}

    def check_api_key(request: Request) -> None:
        if config.api_key is None:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {config.api_key}".encode()):
            raise P.RequestError(401, "missing or wrong API key: send the header "
                                      "'Authorization: Bearer <key>'", None, "invalid_api_key")

    # --- generation requests ---------------------------------------------------------------
    async def serve(request: Request, kind: str):
        arrived = time.monotonic()
        check_api_key(request)
        body = P.parse_json_body(await read_body(request, config.max_body_bytes, config.body_timeout))
        req = P.parse_completion(body, limits) if kind == "completion" else P.parse_chat(body, limits)
        prompt_ids, stop = prepare_prompt(req)
        max_tokens = P.resolve_max_tokens(req, len(prompt_ids), target.n_ctx, config.default_max_tokens)
        job = Job(req, prompt_ids, max_tokens, stop, arrived, P.new_id(kind))
        worker.admit()
        if req.stream:
            return SSEResponse(stream_events(job), on_close=worker.leave)
        try:
            return await complete(request, job)
        finally:
            worker.leave()

    def prepare_prompt(req: P.GenerationRequest) -> tuple[list[int], list[str]]:
        stop = list(req.stop)
        if req.kind == "chat":
            try:
                text = render_chat(req.messages, template)
            except TemplateError as e:
                raise P.bad("messages", str(e)) from None
            stop += [s for s in stop_strings(template) if s not in stop]
        else:
            text = req.prompt
        # a model's own chat template writes its turn markers as text: parse them as tokens
        chat_markers = req.kind == "chat" and template != PLAIN_TEMPLATE
        ids = target.tokenizer.encode(text, parse_special=chat_markers) if isinstance(text, str) else text
        if not ids:
            raise P.bad("prompt", "the prompt is empty and the model adds no BOS token; give some text")
        return ids, stop

    async def run_job(job: Job):
        """Hold the engine and yield (choice, item): None when a choice starts, then its text
        pieces, then its Generation. A piece may be "": the engine's sign of life between
        prefill chunks, which carries no text but lets the caller check for a disconnect."""
        first_piece = True
        reasons = []
        async with worker.turn():
            metrics.queue_time.observe(time.monotonic() - job.arrived)
            metrics.prompt_tokens.inc(len(job.prompt_ids))
            for i in range(job.req.n):
                yield i, None
                generation = worker.generate(job.prompt_ids, job.max_tokens, job.req.choice_sampling(i),
                                             job.stop, job.req.method, job.req.draft_length)
                async with aclosing(generation) as items:
                    async for item in items:
                        if isinstance(item, Generation):
                            reasons.append(P.finish_reason(item.finish_reason))
                            metrics.observe_generation(item.stats, item.stats.method != "ar")
                        elif item and first_piece:
                            first_piece = False
                            metrics.ttft.observe(time.monotonic() - job.arrived)
                        yield i, item
        # one count per request, not per choice: "length" if any choice ran out of tokens
        metrics.request_success.inc(finished_reason="length" if "length" in reasons else "stop")

    def usage_of(job: Job, generations: list[Generation]) -> dict:
        method = generations[0].stats.method if generations else worker.default_method
        draft_length = None if method == "ar" else job.req.draft_length or worker.options.draft_length
        spec = P.speculative_usage(method, draft_length, [g.stats for g in generations])
        return P.usage(len(job.prompt_ids), sum(g.stats.new_tokens for g in generations), spec)

    async def complete(request: Request, job: Job):
        generations: list[Generation] = []
        try:
            async with aclosing(run_job(job)) as items:
                async for _, item in items:
                    if isinstance(item, Generation):
                        generations.append(item)
                    elif await request.is_disconnected():  # checked as each choice starts, each
                        # piece, and each "" the engine yields between prefill chunks
                        metrics.request_aborted.inc(reason="disconnected")
                        return Response(status_code=499)  # nobody is listening; nginx's code
        except P.RequestError as e:
            metrics.request_aborted.inc(reason="shutdown" if e.status == 503 else "error")
            raise
        except AnyspecError as e:
            metrics.request_aborted.inc(reason="error")
            raise P.from_anyspec_error(e) from None
        except Exception as e:
            metrics.request_aborted.inc(reason="error")
            log.exception("generation failed")
            raise engine_failure(e) from None
        metrics.e2e_latency.observe(time.monotonic() - job.arrived)
        texts = [g.text for g in generations]
        reasons = [P.finish_reason(g.finish_reason) for g in generations]
        return JSONResponse(P.response_body(job.req.kind, job.id, job.req.model, texts, reasons,
                                            usage_of(job, generations)))

    async def stream_events(job: Job):
        kind, model = job.req.kind, job.req.model
        generations: list[Generation] = []
        try:
            async with aclosing(run_job(job)) as items:
                async for i, item in items:
                    if item is None:
                        if kind == "chat":
                            yield P.sse(P.chunk_body(kind, job.id, model, i, role=True))
                    elif isinstance(item, Generation):
                        generations.append(item)
                        yield P.sse(P.chunk_body(kind, job.id, model, i,
                                                 finish=P.finish_reason(item.finish_reason)))
                    elif item:  # "" (a prefill heartbeat) has no text: no chunk for it; a client
                        # that leaves during the prefill cancels this stream (Starlette listens
                        # for the disconnect), which closes the generation at its next chunk
                        yield P.sse(P.chunk_body(kind, job.id, model, i, text=item))
            if job.req.include_usage:
                yield P.sse(P.usage_chunk_body(kind, job.id, model, usage_of(job, generations)))
            yield P.sse("[DONE]")
            metrics.e2e_latency.observe(time.monotonic() - job.arrived)
        except (asyncio.CancelledError, GeneratorExit):
            metrics.request_aborted.inc(reason="disconnected")
            raise
        except Exception as e:  # the status line is sent: report it as an error event
            if isinstance(e, P.RequestError):
                error = e
            elif isinstance(e, AnyspecError):
                error = P.from_anyspec_error(e)
            else:
                log.exception("generation failed")
                error = engine_failure(e)
            metrics.request_aborted.inc(reason="shutdown" if error.status == 503 else "error")
            yield P.sse(error.body())
            yield P.sse("[DONE]")

    return app


def engine_failure(e: Exception) -> P.RequestError:
    return P.RequestError(500, f"the generation failed inside the engine ({type(e).__name__}: {e}); "
                               "the server keeps serving", None, "internal_error", "server_error")


async def read_body(request: Request, limit: int, timeout: float) -> bytes:
    """The body, refusing (413) one over `limit` bytes before reading it all into memory, and
    giving up (408) on one that takes over `timeout` seconds in all, so a client trickling
    bytes cannot hold a connection open for ever."""
    too_large = P.RequestError(413, f"the request body is over the limit of {limit} bytes",
                               None, "request_too_large")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except TimeoutError:
        # the rest of the body may still arrive on this connection: close it after answering
        raise P.RequestError(408, f"the request body did not arrive within {timeout:g} s; send it "
                                  "faster, or start the server with a longer --body-timeout",
                             None, "request_timeout", headers={"Connection": "close"}) from None
    return b"".join(chunks)


class ErrorResponse(JSONResponse):
    """An error body written as ASCII JSON: whatever of the request a message quotes (a model
    name, a field name), the response can always be encoded."""

    def render(self, content) -> bytes:
        return json.dumps(content, separators=(",", ":")).encode("ascii")


class SSEResponse(StreamingResponse):
    """Server-sent events that always close their generator and free the queue place, even
    when the client goes away before the first event."""

    def __init__(self, events, on_close) -> None:
        super().__init__(events, media_type="text/event-stream",
                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        self.on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            try:
                await self.body_iterator.aclose()
            finally:
                self.on_close()


class GracefulServer(uvicorn.Server):
    """uvicorn, plus: a shutdown signal fails /health, refuses new requests (503) and starts
    the worker's deadline for the generations already admitted."""

    def __init__(self, config: uvicorn.Config, worker: Worker, timeout: float) -> None:
        super().__init__(config)
        self.worker, self.timeout = worker, timeout

    def handle_exit(self, sig, frame) -> None:
        self.worker.begin_shutdown(self.timeout)
        super().handle_exit(sig, frame)


class CountResponses:
    """ASGI middleware counting responses by endpoint and status, for /metrics."""

    def __init__(self, app, metrics: ServerMetrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        status = 500

        async def send_counted(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            path = scope["path"]
            endpoint = path if path in ENDPOINTS else "/v1/models/{id}" if path.startswith("/v1/models/") else "other"
            self.metrics.http_requests.inc(endpoint=endpoint, status=status)
