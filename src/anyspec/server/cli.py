"""`anyspec serve`: its options (each also read from an ANYSPEC_* environment variable) and
the command that loads the models once and runs uvicorn."""

from __future__ import annotations

import argparse
import logging
import os

from ..errors import AnyspecError, require
from ..options import add_model_options, generator_config, load_models

ENV_PREFIX = "ANYSPEC_"
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def add_serve_parser(sub) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve", help="run an OpenAI-compatible HTTP server (completions, chat, streaming, /metrics)",
        description="Serve the target model, sped up by the draft, over an OpenAI-compatible HTTP "
                    "API: POST /v1/completions, POST /v1/chat/completions, GET /v1/models, /health, "
                    "/metrics (Prometheus). One generation runs at a time; other requests wait in a "
                    "bounded queue, and past it get 429 with Retry-After. A request may choose its "
                    'method and draft length with {"speculative": {"method": "tli", "draft_length": 4}}. '
                    "Every option can also be set by the environment variable shown with it "
                    "(the flag wins). See docs/server.md.",
    )
    add_model_options(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument("--served-model-name", default=None, metavar="NAME",
                   help="the model name clients send and see (default: the target's name)")
    p.add_argument("--max-queue", type=int, default=16, metavar="N",
                   help="requests that may wait while one runs; past N the server answers 429 "
                        "with Retry-After (default 16)")
    p.add_argument("--default-max-tokens", type=int, default=256, metavar="N",
                   help="max_tokens when a request gives none, cut to the context left (default 256)")
    p.add_argument("--max-n", type=int, default=8, metavar="N",
                   help="largest n (choices per request, generated one after another; default 8)")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, metavar="B",
                   help="larger request bodies get 413 (default 1048576)")
    p.add_argument("--body-timeout", type=float, default=30.0, metavar="S",
                   help="a request body not received in full within S seconds gets 408 (default 30)")
    p.add_argument("--chat-template", default=None, metavar="FILE",
                   help="Jinja chat template file, or 'plain' (System:/User:/Assistant: turns); "
                        "default: the target's own template, plain when it has none")
    p.add_argument("--api-key", default=None, metavar="KEY",
                   help="require 'Authorization: Bearer KEY' on /v1 routes (default: no key)")
    p.add_argument("--shutdown-timeout", type=float, default=30.0, metavar="S",
                   help="on SIGTERM/SIGINT: stop taking requests, give running and queued ones S "
                        "seconds to finish, then stop them at their next round (default 30)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"],
                   help="log level (default info; info logs each request)")
    p.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                   help="skip the short generation at startup that builds the tokenizer tables")
    apply_environment(p)
    return p


def apply_environment(parser: argparse.ArgumentParser, environ=os.environ) -> None:
    """Give every option the default $ANYSPEC_<DEST> when set, and name it in the help.

    A bad value is reported when `serve` runs (check_args), not while building the parser,
    so it never gets in the way of the other commands.
    """
    errors = []
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue
        env = ENV_PREFIX + action.dest.upper()
        action.help = f"{action.help} [env {env}]"
        if env not in environ:
            continue
        value = environ[env]
        if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
            if value.lower() not in TRUE + FALSE:
                errors.append(f"{env} must be one of {', '.join(TRUE + FALSE[:-1])}, got {value!r}")
                continue
            action.default = value.lower() in TRUE  # the value of the option's dest itself
        elif action.choices is not None and value not in action.choices:
            errors.append(f"{env}={value!r} is not one of {', '.join(map(str, action.choices))}")
        else:
            action.default = value  # argparse applies the option's type to string defaults
    parser.set_defaults(environment_errors=errors)


def check_args(args):
    """Reject bad settings before the models load; return the GeneratorConfig they give (its
    method and draft length are defaults a request may override; the tree setting applies to
    the methods that draft trees)."""
    if args.environment_errors:
        raise AnyspecError("; ".join(args.environment_errors))
    config = generator_config(args, method="auto").for_method(args.method)
    for name, low in (("max_queue", 0), ("default_max_tokens", 1), ("max_n", 1), ("max_body_bytes", 1)):
        if getattr(args, name) < low:
            raise AnyspecError(f"--{name.replace('_', '-')} must be >= {low}, got {getattr(args, name)}")
    if not 0 <= args.port <= 65535:
        raise AnyspecError(f"--port must be in 0..65535, got {args.port}")
    if not args.body_timeout > 0:
        raise AnyspecError(f"--body-timeout must be > 0 seconds, got {args.body_timeout}")
    if args.shutdown_timeout < 0:
        raise AnyspecError(f"--shutdown-timeout must be >= 0, got {args.shutdown_timeout}")
    if args.chat_template not in (None, "plain") and not os.path.isfile(args.chat_template):
        raise AnyspecError(f"--chat-template {args.chat_template}: no such file (or give 'plain')")
    return config


def cmd_serve(args) -> int:
    require("fastapi", "uvicorn", "jinja2", extra="serve", feature="anyspec serve")
    decoding = check_args(args)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    import uvicorn

    from .app import GracefulServer, ServerConfig, create_app
    from .worker import Worker

    target, draft = load_models(args)
    worker = Worker(target, draft, decoding, args.max_queue)
    config = ServerConfig(model_name=args.served_model_name or target.name,
                          max_body_bytes=args.max_body_bytes, body_timeout=args.body_timeout,
                          default_max_tokens=args.default_max_tokens,
                          max_n=args.max_n, api_key=args.api_key, chat_template=args.chat_template,
                          warm_up=args.warm_up)
    app = create_app(worker, config)
    # uvicorn's own deadline is a backstop: the worker stops generations at shutdown_timeout
    uv_config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level,
                               timeout_graceful_shutdown=args.shutdown_timeout + 5)
    GracefulServer(uv_config, worker, args.shutdown_timeout).run()
    return 0
