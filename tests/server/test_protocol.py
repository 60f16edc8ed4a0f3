"""Request checking, response shapes, chat templates, metrics text and env configuration:
pure functions, no models."""

import argparse
from types import SimpleNamespace

import pytest
from serving import metrics_samples

from anyspec.server import protocol as P
from anyspec.server.cli import apply_environment
from anyspec.server.metrics import ServerMetrics
from anyspec.server.templates import (
    PLAIN_TEMPLATE,
    TemplateError,
    choose_template,
    render_chat,
    stop_strings,
)
from anyspec.server.worker import retry_after_seconds

LIMITS = P.Limits(models=("m",), n_ctx=100, vocab_size=50, methods=("auto", "ar", "sd", "tli"),
                  max_n=4, unavailable={"sd": "vocabularies differ"})


def completion(**fields):
    return P.parse_completion({"model": "m", "prompt": "hi", **fields}, LIMITS)


def chat(**fields):
    return P.parse_chat({"model": "m", "messages": [{"role": "user", "content": "hi"}], **fields}, LIMITS)


def error_of(fn, **fields) -> P.RequestError:
    with pytest.raises(P.RequestError) as info:
        fn(**fields)
    return info.value


def test_defaults_follow_openai():
    req = completion()
    assert (req.prompt, req.max_tokens, req.n, req.stream, req.stop) == ("hi", None, 1, False, [])
    assert req.sampling.temperature == 1.0 and req.sampling.top_p == 1.0 and req.sampling.seed is None
    assert req.method is None and req.draft_length is None
    assert not completion(stream=True).include_usage  # a usage chunk only when asked


def test_parameters_are_honoured():
    req = completion(max_tokens=16.0, temperature=0, top_p=0.5, top_k=3, seed=7, stop="\n", n=2,
                     stream=True, stream_options={"include_usage": False},
                     speculative={"method": "tli", "draft_length": 4}, user="me")
    assert req.max_tokens == 16 and isinstance(req.max_tokens, int)
    assert req.sampling.greedy and req.sampling.top_p == 0.5 and req.sampling.top_k == 3
    assert req.stop == ["\n"] and req.n == 2 and req.stream and not req.include_usage
    assert (req.method, req.draft_length) == ("tli", 4)
    assert [req.choice_sampling(i).seed for i in range(2)] == [7, 8]


def test_chat_prefers_max_completion_tokens_and_joins_text_parts():
    req = chat(max_tokens=5, max_completion_tokens=9,
               messages=[{"role": "developer", "content": [{"type": "text", "text": "a"},
                                                           {"type": "text", "text": "b"}]}])
    assert req.max_tokens == 9 and req.messages == [{"role": "developer", "content": "ab"}]
    named = chat(messages=[{"role": "user", "content": "x", "name": "ann"}]).messages
    assert named == [{"role": "user", "content": "x", "name": "ann"}]


def test_prompt_forms():
    assert completion(prompt=["one"]).prompt == "one"
    assert completion(prompt=[1, 2, 49]).prompt == [1, 2, 49]
    for prompt, words in ((["a", "b"], "batch"), ([[1], [2]], "batch"), ([], "empty"),
                          ([1, 50], "outside the vocabulary"), (3, "string or a list"),
                          ([1, True], "string or a list")):
        e = error_of(completion, prompt=prompt)
        assert (e.status, e.param) == (400, "prompt") and words in e.message, prompt
    assert error_of(P.parse_completion, body={"model": "m"}, limits=LIMITS).param == "prompt"


@pytest.mark.parametrize("field,value,words", [
    ("max_tokens", -1, "from 1 to 100"), ("max_tokens", 0, "from 1 to 100"),
    ("max_tokens", 10**9, "from 1 to 100"), ("max_tokens", "8", "got a string"),
    ("max_tokens", 1.5, "got the number 1.5"), ("max_tokens", True, "got a boolean"),
    ("temperature", -0.1, "from 0 to 2"), ("temperature", 3, "from 0 to 2"),
    ("temperature", "hot", "got a string"), ("top_p", 0, "greater than 0"), ("top_p", 1.01, "at most 1"),
    ("seed", -1, "from 0"), ("seed", "x", "integer"),
    ("n", 0, "from 1 to 4"), ("n", 5, "from 1 to 4"), ("stop", 3, "string or a list"),
    ("stop", ["a", 1], "string or a list"), ("stop", ["a"] * 5, "at most 4"),
    ("stream", "yes", "true or false"), ("top_k", -1, ">= 0"),
    ("user", 3, "must be a string"), ("user", ["me"], "must be a string"), ("user", False, "must be a string"),
])
def test_bad_values_name_their_field(field, value, words):
    e = error_of(completion, **{field: value})
    assert e.status == 400 and e.param == field and words in e.message, e.message
    assert P.error_body(e.message, param=e.param)["error"]["param"] == field


def test_unsupported_parameters_are_refused_unless_off():
    completion(presence_penalty=0, frequency_penalty=0.0, logprobs=None, best_of=1, echo=False,
               logit_bias={}, response_format={"type": "text"})
    for field, value in (("logprobs", 2), ("logprobs", True), ("presence_penalty", 0.5), ("best_of", 3),
                         ("echo", True), ("logit_bias", {"5": 1}), ("suffix", "x"),
                         ("response_format", {"type": "json_object"}), ("best_of", True)):
        e = error_of(completion, **{field: value})
        assert (e.param, e.code) == (field, "unsupported_parameter") and "not supported" in e.message
    e = error_of(completion, frobnicate=1)
    assert e.param == "frobnicate" and "unknown or unsupported" in e.message
    assert error_of(completion, messages=[]).param == "messages"  # a chat field on completions
    assert error_of(chat, prompt="x").param == "prompt"


def test_model_must_be_served():
    e = error_of(completion, model="gpt-4")
    assert (e.status, e.param, e.code) == (404, "model", "model_not_found") and "serves: m" in e.message
    assert error_of(completion, model=3).status == 400


@pytest.mark.parametrize("messages,param", [
    (None, "messages"), ("hi", "messages"), ([], "messages"), (["hi"], "messages[0]"),
    ([{"role": "robot", "content": "x"}], "messages[0].role"),
    ([{"role": "user"}], "messages[0].content"),
    ([{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}], "messages[0].content[0]"),
    ([{"role": "user", "content": "x"}, {"role": "tool", "content": "y"}], "messages[1].role"),
    ([{"role": "assistant", "content": "x", "tool_calls": []}], "messages[0].tool_calls"),
    ([{"role": "user", "content": "x", "name": 7}], "messages[0].name"),
])
def test_bad_messages(messages, param):
    e = error_of(chat, messages=messages)
    assert (e.status, e.param) == (400, param), e.message


def test_speculative_extension():
    assert completion(speculative={"method": "auto", "draft_length": "auto"}).method == "auto"
    assert completion(speculative={"draft_length": "adaptive"}).draft_length == "adaptive"
    for spec, param, words in (({"method": "magic"}, "speculative.method", "must be one of"),
                               ({"method": "sd"}, "speculative.method", "vocabularies differ"),
                               ({"draft_length": 0}, "speculative.draft_length", "from 1 to 64"),
                               ({"draft_length": "fast"}, "speculative.draft_length", '"adaptive"'),
                               ({"draft_length": "4"}, "speculative.draft_length", "from 1 to 64"),
                               ({"k": 4}, "speculative.k", "unknown"), ("tli", "speculative", "object")):
        e = error_of(completion, speculative=spec)
        assert e.param == param and words in e.message, e.message


def test_stream_options_need_stream():
    assert completion(stream=True, stream_options={"include_usage": True}).include_usage
    assert not completion(stream=True, stream_options={}).include_usage
    assert error_of(completion, stream_options={"include_usage": True}).param == "stream_options"
    assert error_of(completion, stream=True, stream_options={"include_usage": 1}).param == \
        "stream_options.include_usage"


def test_json_body():
    assert P.parse_json_body(b'{"a": 1}') == {"a": 1}
    for raw in (b"{bad", b"[1, 2]", b'"x"', b'{"a": NaN}', b"\xff\xfe", b""):
        e = error_of(P.parse_json_body, raw=raw)
        assert (e.status, e.code, e.param) == (400, "invalid_json", None), raw


@pytest.mark.parametrize("raw,param", [
    (rb'{"prompt": "a\ud800"}', "prompt"), (rb'{"messages": [{"content": "\udfff"}]}', "messages[0].content"),
    (rb'{"stop": ["ok", "\ud800x"]}', "stop[1]"), (rb'{"a": {"\ud800": 1}}', "a"), (rb'{"\udc00": 1}', None),
])
def test_json_strings_must_be_unicode(raw, param):
    e = error_of(P.parse_json_body, raw=raw)
    assert (e.status, e.param, e.code) == (400, param, "invalid_unicode") and "surrogate" in e.message
    assert P.parse_json_body(rb'{"prompt": "\ud83d\ude00"}') == {"prompt": "\U0001F600"}  # a pair is fine


def test_json_nesting_is_bounded():
    for raw in (b"[" * 100_000, b'{"a":' * 100_000):
        e = error_of(P.parse_json_body, raw=raw)
        assert (e.status, e.param) == (400, None) and "nested too deeply" in e.message

    def lists(n: int) -> bytes:  # the body object, then n lists inside each other
        return b'{"a": ' + b"[" * n + b"]" * n + b"}"

    assert P.parse_json_body(lists(P.MAX_JSON_DEPTH - 1))  # at the limit
    e = error_of(P.parse_json_body, raw=lists(P.MAX_JSON_DEPTH))
    assert e.param == "a" + "[0]" * (P.MAX_JSON_DEPTH - 1) and "nested too deeply" in e.message


def test_context_budget():
    req = completion(max_tokens=30)
    assert P.resolve_max_tokens(req, 70, 100, default=256) == 30
    e = error_of(P.resolve_max_tokens, req=req, prompt_tokens=71, n_ctx=100, default=256)
    assert (e.param, e.code) == ("max_tokens", "context_length_exceeded") and "at most 29" in e.message
    e = error_of(P.resolve_max_tokens, req=chat(), prompt_tokens=100, n_ctx=100, default=256)
    assert (e.param, e.code) == ("messages", "context_length_exceeded")
    assert P.resolve_max_tokens(completion(), 90, 100, default=256) == 10  # default cut to the room


def test_usage_statistics():
    a = SimpleNamespace(rounds=3, drafted=9, accepted=6, accepted_at=[3, 2, 1], new_tokens=9)
    b = SimpleNamespace(rounds=1, drafted=2, accepted=0, accepted_at=[], new_tokens=1)
    spec = P.speculative_usage("tli", 4, [a, b])
    assert spec["steps"] == 4 and spec["draft_tokens"] == 11 and spec["accepted_tokens"] == 6
    assert spec["accepted_tokens_per_position"] == [3, 2, 1]
    assert spec["mean_acceptance_length"] == pytest.approx(1 + 6 / 4)
    assert spec["acceptance_rate"] == pytest.approx(6 / 11)
    u = P.usage(5, 10, spec)
    assert (u["prompt_tokens"], u["completion_tokens"], u["total_tokens"]) == (5, 10, 15)


def test_response_shapes():
    body = P.response_body("chat", "id1", "m", ["x", "y"], ["stop", "length"], {"u": 1})
    assert body["object"] == "chat.completion" and body["choices"][1]["message"]["content"] == "y"
    body = P.response_body("completion", "id1", "m", ["x"], ["stop"], {})
    assert body["object"] == "text_completion" and body["choices"][0]["text"] == "x"
    assert P.chunk_body("chat", "i", "m", 0, role=True)["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert P.chunk_body("chat", "i", "m", 1, finish="stop")["choices"][0] == \
        {"index": 1, "delta": {}, "logprobs": None, "finish_reason": "stop"}
    assert P.sse("[DONE]") == "data: [DONE]\n\n"
    assert P.finish_reason("context") == "length" and P.finish_reason("stop") == "stop"


def test_plain_template():
    text = render_chat([{"role": "developer", "content": "Be terse."},
                        {"role": "user", "content": "2+2?"}], PLAIN_TEMPLATE)
    assert text == "System: Be terse.\n\nUser: 2+2?\n\nAssistant:"
    assert stop_strings(PLAIN_TEMPLATE) == ("\nUser:",)
    assert choose_template(None, None)[0] == PLAIN_TEMPLATE
    assert choose_template("{{ x }}", None)[0] == "{{ x }}" and stop_strings("{{ x }}") == ()
    assert choose_template("{{ x }}", "plain")[0] == PLAIN_TEMPLATE


def test_model_template_is_sandboxed_and_can_refuse():
    template = ("{% if messages[0]['role'] != 'user' %}{{ raise_exception('user first') }}{% endif %}"
                "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}{% endfor %}")
    assert render_chat([{"role": "user", "content": "a"}], template) == "<user>a"
    with pytest.raises(TemplateError, match="user first"):
        render_chat([{"role": "assistant", "content": "a"}], template)
    with pytest.raises(TemplateError):  # the sandbox refuses attribute tricks
        render_chat([{"role": "user", "content": "a"}], "{{ messages.__class__.__mro__ }}")


def test_metrics_render_prometheus_text():
    m = ServerMetrics("m")
    # 6 rounds, 4 of which drafted (vLLM's "drafts"); 2 drafted nothing
    stats = SimpleNamespace(rounds=6, drafted=10, accepted=7, accepted_at=[4, 2, 1] + [0] * 8,
                            drafted_at=[4, 3, 3], new_tokens=13)
    m.observe_generation(stats, speculative=True)
    m.observe_generation(SimpleNamespace(rounds=2, drafted=0, accepted=0, accepted_at=[], drafted_at=[],
                                         new_tokens=2), speculative=True)
    m.observe_generation(SimpleNamespace(rounds=5, drafted=0, accepted=0, accepted_at=[], drafted_at=[],
                                         new_tokens=5), speculative=False)
    m.http_requests.inc(endpoint="/v1/completions", status=429)
    for seconds in (0.05, 0.1, 0.5, 3.0):
        m.e2e_latency.observe(seconds)
    text = m.render(running=1, waiting=3, max_queue=8)
    samples = metrics_samples(text)
    expected = {
        'anyspec:spec_decode_num_drafts_total{model_name="m"}': 4,
        'anyspec:spec_decode_num_draft_tokens_total{model_name="m"}': 10,
        'anyspec:spec_decode_num_accepted_tokens_total{model_name="m"}': 7,
        'anyspec:generation_tokens_total{model_name="m"}': 20,
        'anyspec:spec_decode_num_accepted_tokens_per_pos_total{model_name="m",position="1"}': 2,
        'anyspec:num_requests_waiting{model_name="m"}': 3, 'anyspec:num_requests_running{model_name="m"}': 1,
        'anyspec:queue_capacity{model_name="m"}': 8,
        'anyspec:http_requests_total{endpoint="/v1/completions",model_name="m",status="429"}': 1,
        'anyspec:e2e_request_latency_seconds_bucket{le="0.05",model_name="m"}': 1,  # a bound is in its bucket
        'anyspec:e2e_request_latency_seconds_bucket{le="0.1",model_name="m"}': 2,
        'anyspec:e2e_request_latency_seconds_bucket{le="0.5",model_name="m"}': 3,
        'anyspec:e2e_request_latency_seconds_bucket{le="+Inf",model_name="m"}': 4,
        'anyspec:e2e_request_latency_seconds_count{model_name="m"}': 4}
    assert {name: samples.get(name) for name in expected} == expected
    assert samples['anyspec:e2e_request_latency_seconds_sum{model_name="m"}'] == pytest.approx(3.65)
    assert "# TYPE anyspec:e2e_request_latency_seconds histogram" in text.splitlines()
    positions = [name for name in samples if name.startswith("anyspec:spec_decode_num_accepted_tokens_per_pos")]
    assert [name.split('"')[3] for name in positions] == [str(i) for i in range(11)]  # 10 after 9, not after 1
    assert all('model_name="m"' in name for name in samples)
    assert not [name for name in samples if "_created" in name]  # no creation timestamps
    # each app has its own registry: a second one in the process starts from zero
    assert metrics_samples(ServerMetrics("m").render(0, 0, 8))['anyspec:generation_tokens_total{model_name="m"}'] == 0


def test_retry_after_grows_with_the_queue():
    assert retry_after_seconds(0, 0.01) == 1
    assert retry_after_seconds(4, 2.0) == 10
    assert retry_after_seconds(1000, 100.0) == 120


def test_environment_sets_defaults_and_flags_win():
    def parser():
        p = argparse.ArgumentParser()
        p.add_argument("--max-queue", type=int, default=16, help="q")
        p.add_argument("--method", default="auto", choices=["auto", "ar"], help="m")
        p.add_argument("--no-warm-up", dest="warm_up", action="store_false", help="w")
        return p

    p = parser()
    apply_environment(p, {"ANYSPEC_MAX_QUEUE": "3", "ANYSPEC_METHOD": "ar", "ANYSPEC_WARM_UP": "0"})
    args = p.parse_args([])
    assert (args.max_queue, args.method, args.warm_up, args.environment_errors) == (3, "ar", False, [])
    assert p.parse_args(["--max-queue", "5"]).max_queue == 5
    assert "[env ANYSPEC_MAX_QUEUE]" in p.format_help()
    p = parser()
    apply_environment(p, {"ANYSPEC_METHOD": "magic", "ANYSPEC_WARM_UP": "maybe"})
    errors = p.parse_args([]).environment_errors
    assert len(errors) == 2 and "ANYSPEC_METHOD='magic'" in errors[0] and "ANYSPEC_WARM_UP" in errors[1]


def test_serve_help_documents_every_option():
    from anyspec.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    serve = sub.choices["serve"]
    options = [a for a in serve._actions if a.option_strings and a.dest != "help"]
    assert len(options) > 20
    for action in options:
        assert action.help and f"[env ANYSPEC_{action.dest.upper()}]" in action.help, action.dest


def test_body_timeout_must_be_positive():
    from anyspec.cli import build_parser
    from anyspec.errors import AnyspecError
    from anyspec.server.cli import check_args

    assert build_parser().parse_args(["serve"]).body_timeout == 30
    for value in ("0", "-1", "nan"):
        args = build_parser().parse_args(["serve", "--body-timeout", value])
        with pytest.raises(AnyspecError, match="--body-timeout must be > 0"):
            check_args(args)
