"""Prometheus metrics for /metrics, kept with prometheus-client in a registry of the app's own
(not the process-wide default one, so two apps in one process keep separate counts).

Names follow vLLM's (`vllm:spec_decode_num_drafts_total` -> `anyspec:spec_decode_num_drafts_total`),
and as in vLLM every sample carries the label model_name="<served name>", so dashboards built
for serving engines work after changing the prefix.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

PREFIX = "anyspec:"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)


class ModelCounter:
    """A counter with labels besides model_name: inc(amount, **labels) adds the model's."""

    def __init__(self, metric: Counter, model_name: str) -> None:
        self.metric, self.model_name = metric, model_name

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        self.metric.labels(model_name=self.model_name, **labels).inc(amount)


class Exposed:
    """The collector the registry reads: the metrics' samples without the `_created` ones
    (creation timestamps, which prometheus-client adds to counters and histograms and can
    switch off only for the whole process)."""

    def __init__(self, metrics: list) -> None:
        self.metrics = metrics

    def collect(self):
        for metric in self.metrics:
            for family in metric.collect():
                family.samples = [s for s in family.samples if not s.name.endswith("_created")]
                yield family


class ServerMetrics:
    """What /metrics shows. Gauges (queue depth) are set from the worker when rendering."""

    def __init__(self, model_name: str) -> None:
        self.registry = CollectorRegistry()
        metrics = []

        def metric(kind, name: str, help: str, labels: tuple[str, ...] = (), **kw):
            # registry=None: registered only through Exposed, in this app's registry
            m = kind(PREFIX + name, help, ("model_name", *labels), registry=None, **kw)
            metrics.append(m)
            return ModelCounter(m, model_name) if labels else m.labels(model_name=model_name)

        self.running = metric(Gauge, "num_requests_running", "Requests the engine is generating for (0 or 1).")
        self.waiting = metric(Gauge, "num_requests_waiting", "Requests waiting in the queue for the engine.")
        self.capacity = metric(Gauge, "queue_capacity", "Most requests that may wait; past it: 429.")
        self.http_requests = metric(Counter, "http_requests_total", "HTTP responses by endpoint and status code.",
                                    ("endpoint", "status"))
        self.request_success = metric(Counter, "request_success_total",
                                      "Requests that finished all their choices, by finish reason: "
                                      "length if a choice ran out of tokens, else stop.", ("finished_reason",))
        self.request_aborted = metric(Counter, "request_aborted_total",
                                      "Generations that did not finish: the client disconnected, the "
                                      "engine failed, or the server shut down.", ("reason",))
        self.prompt_tokens = metric(Counter, "prompt_tokens_total", "Prompt tokens of generations that ran.")
        self.generation_tokens = metric(Counter, "generation_tokens_total", "Tokens generated (finished choices).")
        self.num_drafts = metric(Counter, "spec_decode_num_drafts_total",
                                 "Drafts: speculative steps that proposed at least one token (steps "
                                 "that drafted nothing are not counted). Mean acceptance length = "
                                 "1 + accepted / drafts.")
        self.num_draft_tokens = metric(Counter, "spec_decode_num_draft_tokens_total", "Draft tokens proposed.")
        self.num_accepted_tokens = metric(Counter, "spec_decode_num_accepted_tokens_total",
                                          "Draft tokens the target accepted.")
        self.accepted_per_pos = metric(Counter, "spec_decode_num_accepted_tokens_per_pos_total",
                                       "Accepted draft tokens by position in the draft (0 = first).", ("position",))
        self.e2e_latency = metric(Histogram, "e2e_request_latency_seconds",
                                  "From arrival to the last byte, for requests that generated.",
                                  buckets=LATENCY_BUCKETS)
        self.queue_time = metric(Histogram, "request_queue_time_seconds", "Time a request waited for the engine.",
                                 buckets=LATENCY_BUCKETS)
        self.ttft = metric(Histogram, "time_to_first_token_seconds", "From arrival to the first text piece.",
                           buckets=LATENCY_BUCKETS)
        self.registry.register(Exposed(metrics))

    def observe_generation(self, stats, speculative: bool) -> None:
        """Count one finished choice (stats: engine GenerationStats)."""
        self.generation_tokens.inc(stats.new_tokens)
        if not speculative:  # target-only decoding drafts nothing: no speculative steps
            return
        self.num_drafts.inc(stats.drafted_at[0] if stats.drafted_at else 0)  # rounds drafting >= 1
        self.num_draft_tokens.inc(stats.drafted)
        self.num_accepted_tokens.inc(stats.accepted)
        for position, n in enumerate(stats.accepted_at):
            self.accepted_per_pos.inc(n, position=position)

    def render(self, running: int, waiting: int, max_queue: int) -> str:
        """The Prometheus text exposition format (prometheus_client.CONTENT_TYPE_LATEST)."""
        self.running.set(running)
        self.waiting.set(waiting)
        self.capacity.set(max_queue)
        return generate_latest(self.registry).decode()
