"""`anyspec serve`: an OpenAI-compatible HTTP server over the speculative engine.

protocol.py  request checking and response shapes (pure, unit-tested without models)
templates.py chat messages -> prompt (the target's template, or a plain one)
metrics.py   Prometheus text for /metrics
worker.py    the loaded models, one engine thread, the bounded queue
app.py       the FastAPI routes
cli.py       the `serve` options and command
"""
