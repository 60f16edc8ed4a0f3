"""Prometheus metrics in the text exposition format, written by hand (no extra dependency).

Names follow vLLM's (`vllm:spec_decode_num_drafts_total` -> `anyspec:spec_decode_num_drafts_total`),
and as in vLLM every sample carries the label model_name="<served name>", so dashboards built
for serving engines work after changing the prefix. Every update happens on the event loop
thread, so nothing here needs a lock.
"""

from __future__ import annotations

import bisect
import math

PREFIX = "anyspec:"
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)


class Counter:
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = (),
                 const: dict[str, str] | None = None) -> None:
        self.name, self.help, self.labels = PREFIX + name, help, labels
        self.const = const or {}  # labels every sample carries (model_name)
        self.values: dict[tuple[str, ...], float] = {} if labels else {(): 0.0}

    def inc(self, amount: float = 1.0, **labels: object) -> None:
        key = tuple(str(labels[name]) for name in self.labels)
        self.values[key] = self.values.get(key, 0.0) + amount

    def get(self, **labels: object) -> float:
        return self.values.get(tuple(str(labels[name]) for name in self.labels), 0.0)

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        names = (*self.const, *self.labels)
        for key in sorted(self.values, key=_label_sort_key):
            values = (*self.const.values(), *key)
            lines.append(f"{self.name}{_labels(names, values)} {_number(self.values[key])}")
        return lines


class Histogram:
    def __init__(self, name: str, help: str, buckets: tuple[float, ...] = LATENCY_BUCKETS,
                 const: dict[str, str] | None = None) -> None:
        self.name, self.help, self.buckets = PREFIX + name, help, tuple(buckets)
        self.const = const or {}  # labels every sample carries (model_name)
        self.counts = [0] * (len(self.buckets) + 1)  # the last one is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def render(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        names, values = tuple(self.const), tuple(self.const.values())
        cumulative = 0
        for bound, n in zip((*self.buckets, math.inf), self.counts):
            cumulative += n
            le = "+Inf" if bound == math.inf else _number(bound)
            lines.append(f"{self.name}_bucket{_labels((*names, 'le'), (*values, le))} {cumulative}")
        lines += [f"{self.name}_sum{_labels(names, values)} {_number(self.sum)}",
                  f"{self.name}_count{_labels(names, values)} {self.count}"]
        return lines


def gauge_lines(name: str, help: str, value: float, const: dict[str, str] | None = None) -> list[str]:
    name = PREFIX + name
    const = const or {}
    return [f"# HELP {name} {help}", f"# TYPE {name} gauge",
            f"{name}{_labels(tuple(const), tuple(const.values()))} {_number(value)}"]


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") for v in values)
    return "{" + ",".join(f'{n}="{v}"' for n, v in zip(names, escaped)) + "}"


def _label_sort_key(key: tuple[str, ...]) -> tuple:
    return tuple((0, int(v), "") if v.isdigit() else (1, 0, v) for v in key)  # position 2 < 10


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else repr(float(x))


class ServerMetrics:
    """What /metrics shows. Gauges (queue depth) are read from the worker when rendering."""

    def __init__(self, model_name: str) -> None:
        self.model = {"model_name": model_name}
        m = self.model
        self.http_requests = Counter("http_requests_total", "HTTP responses by endpoint and status code.",
                                     ("endpoint", "status"), m)
        self.request_success = Counter("request_success_total",
                                       "Requests that finished all their choices, by finish reason: "
                                       "length if a choice ran out of tokens, else stop.",
                                       ("finished_reason",), m)
        self.request_aborted = Counter("request_aborted_total",
                                       "Generations that did not finish: the client disconnected, the "
                                       "engine failed, or the server shut down.", ("reason",), m)
        self.prompt_tokens = Counter("prompt_tokens_total", "Prompt tokens of generations that ran.", const=m)
        self.generation_tokens = Counter("generation_tokens_total", "Tokens generated (finished choices).",
                                         const=m)
        self.num_drafts = Counter("spec_decode_num_drafts_total",
                                  "Drafts: speculative steps that proposed at least one token (steps "
                                  "that drafted nothing are not counted). Mean acceptance length = "
                                  "1 + accepted / drafts.", const=m)
        self.num_draft_tokens = Counter("spec_decode_num_draft_tokens_total", "Draft tokens proposed.",
                                        const=m)
        self.num_accepted_tokens = Counter("spec_decode_num_accepted_tokens_total",
                                           "Draft tokens the target accepted.", const=m)
        self.accepted_per_pos = Counter("spec_decode_num_accepted_tokens_per_pos_total",
                                        "Accepted draft tokens by position in the draft (0 = first).",
                                        ("position",), m)
        self.e2e_latency = Histogram("e2e_request_latency_seconds",
                                     "From arrival to the last byte, for requests that generated.", const=m)
        self.queue_time = Histogram("request_queue_time_seconds",
                                    "Time a request waited for the engine.", const=m)
        self.ttft = Histogram("time_to_first_token_seconds", "From arrival to the first text piece.",
                              const=m)

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
        m = self.model
        lines = gauge_lines("num_requests_running", "Requests the engine is generating for (0 or 1).",
                            running, m)
        lines += gauge_lines("num_requests_waiting", "Requests waiting in the queue for the engine.", waiting, m)
        lines += gauge_lines("queue_capacity", "Most requests that may wait; past it: 429.", max_queue, m)
        for metric in (self.http_requests, self.request_success, self.request_aborted,
                       self.prompt_tokens, self.generation_tokens, self.num_drafts,
                       self.num_draft_tokens, self.num_accepted_tokens, self.accepted_per_pos,
                       self.e2e_latency, self.queue_time, self.ttft):
            lines += metric.render()
        return "\n".join(lines) + "\n"
