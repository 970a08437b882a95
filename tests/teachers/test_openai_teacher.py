"""The openai backend against a real HTTP server on loopback that misbehaves on demand."""

import logging

import pytest

from pipelines.config.recipe import OpenAIOptions, SyntheticSource, TeacherConfig
from pipelines.sources.synthetic import make_record
from pipelines.teachers.base import ChatRequest, Sampling, user_message
from pipelines.teachers.openai_teacher import OpenAITeacher
from tests.fault_server import HOSTILE, FaultServer

SECRET = "sk-test-0123456789abcdef"


@pytest.fixture
def server():
    s = FaultServer(hang_s=1.5)
    yield s
    s.close()


def _teacher(server, monkeypatch, **opts):
    monkeypatch.setenv("ET_TEST_KEY", SECRET)
    options = dict(base_url=server.url, api_key_env="ET_TEST_KEY", timeout_s=0.5, max_retries=3, backoff_s=0.01, backoff_max_s=0.05)
    options.update(opts)
    return OpenAITeacher(TeacherConfig(backend="openai", model="served-model", openai=OpenAIOptions(**options)))


def _req(text, **sampling):
    return ChatRequest(user_message(text), Sampling(max_tokens=16, **sampling))


def test_replies_carry_text_finish_reason_and_usage(server, monkeypatch):
    teacher = _teacher(server, monkeypatch)
    (reply,) = teacher.generate([_req("plain", n=2, seed=3)])
    assert reply.error is None and len(reply.outputs) == 2
    assert reply.outputs[0].text.endswith("Answer: 4") and reply.outputs[0].finish_reason == "stop"
    assert reply.outputs[0].prompt_tokens == 11 and reply.outputs[0].completion_tokens == 5
    body = server.bodies[-1]
    assert (body["model"], body["n"], body["seed"], body["max_tokens"]) == ("served-model", 2, 3, 16)
    assert server.auth == {f"Bearer {SECRET}"}
    teacher.close()


def test_images_travel_as_data_uris(server, monkeypatch):
    record = make_record(0, SyntheticSource(image_size=64))
    teacher = _teacher(server, monkeypatch)
    (reply,) = teacher.generate([ChatRequest(user_message("Describe.", record.images), Sampling(max_tokens=8))])
    assert reply.error is None
    part = server.bodies[-1]["messages"][0]["content"][0]
    assert part["type"] == "image_url" and part["image_url"]["url"].startswith("data:image/png;base64,")
    teacher.close()


@pytest.mark.parametrize("kind", ["429", "500", "timeout", "malformed", "empty", "blank"])
def test_transient_faults_are_retried_until_they_pass(server, monkeypatch, kind):
    teacher = _teacher(server, monkeypatch)
    prompt = f"q [[{kind} x2]]"
    (reply,) = teacher.generate([_req(prompt)])
    assert reply.error is None, reply.error
    assert server.attempts[prompt] == 3
    teacher.close()


def test_after_the_last_retry_one_request_fails_and_its_batch_goes_on(server, monkeypatch):
    teacher = _teacher(server, monkeypatch, max_retries=2)
    replies = teacher.generate([_req("ok one"), _req("bad [[500 always]]"), _req("refused [[400]]"), _req("ok two")])
    assert replies[0].error is None and replies[3].error is None
    assert replies[1].error == "HTTP 500: InternalServerError (after 3 attempts)"
    assert server.attempts["bad [[500 always]]"] == 3
    assert replies[2].error == "HTTP 400: BadRequestError (bad request) (not retried)"  # the server's reason, kept
    assert server.attempts["refused [[400]]"] == 1  # not retried
    teacher.close()


def test_concurrency_is_bounded(monkeypatch):
    slow = FaultServer(delay_s=0.15)
    try:
        teacher = _teacher(slow, monkeypatch, max_concurrency=3, timeout_s=5)
        replies = teacher.generate([_req(f"r{i}") for i in range(12)])
        assert all(r.error is None for r in replies)
        assert slow.max_in_flight == 3
        teacher.close()
    finally:
        slow.close()


def test_the_key_never_appears_in_replies_or_logs(server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    teacher = _teacher(server, monkeypatch, max_retries=1)
    replies = teacher.generate([_req("x [[500 always]]"), _req("y [[400]]"), _req("z")])
    assert SECRET not in repr(replies) and SECRET not in caplog.text
    teacher.close()


def test_a_missing_base_url_is_a_clear_error():
    with pytest.raises(ValueError, match="openai.base_url: the openai backend needs an endpoint"):
        OpenAITeacher(TeacherConfig(backend="openai", model="m"))


def test_a_dripping_server_cannot_hold_an_attempt_past_its_deadline(monkeypatch):
    """The reply arrives one byte every 0.2 s (some 60 s in all): each attempt ends at
    timeout_s, not when the server stops."""
    import time

    dripping = FaultServer(drip_s=0.2)
    try:
        teacher = _teacher(dripping, monkeypatch, timeout_s=0.6, max_retries=1)
        start = time.perf_counter()
        (reply,) = teacher.generate([_req("slow [[drip always]]")])
        assert time.perf_counter() - start < 3
        assert reply.error == "timeout (after 2 attempts)"
        teacher.close()
    finally:
        dripping.close()


def test_retry_after_is_capped_at_backoff_max(server, monkeypatch):
    import time

    teacher = _teacher(server, monkeypatch, backoff_max_s=0.2)
    start = time.perf_counter()
    (reply,) = teacher.generate([_req("later [[wait x1]]")])  # the server asks for an hour
    assert reply.error is None and time.perf_counter() - start < 2


@pytest.mark.parametrize("kind, error", [("badutf8", "MalformedReply: the reply is not JSON: UnicodeDecodeError"),
                                         ("badusage", "MalformedReply: usage.prompt_tokens is 'lots', not a token count"),
                                         ("huge", "ResponseTooLarge: the reply announces")])
def test_undecodable_mistyped_or_oversized_replies_are_malformed_then_retried(server, monkeypatch, kind, error):
    teacher = _teacher(server, monkeypatch, max_retries=1, max_response_bytes=100_000)
    (bad,) = teacher.generate([_req(f"q [[{kind} always]]")])
    assert bad.error.startswith(error) and bad.error.endswith("(after 2 attempts)"), bad.error
    (good,) = teacher.generate([_req(f"q [[{kind} x1]]")])
    assert good.error is None and good.outputs[0].text.endswith("Answer: 4")
    teacher.close()


def test_an_oversized_reply_is_cut_off_as_it_arrives_without_a_length(server, monkeypatch):
    """A body sent without Content-Length (chunked) is counted while it arrives."""
    from pipelines.teachers.openai_teacher import ResponseTooLarge, _CappedStream

    class Chunks:
        async def __aiter__(self):
            for _ in range(100):
                yield b"x" * 1000

        async def aclose(self):
            pass

    async def read():
        return [c async for c in _CappedStream(Chunks(), 10_000)]

    import asyncio

    with pytest.raises(ResponseTooLarge, match="longer than max_response_bytes"):
        asyncio.run(read())


def test_a_server_echoing_the_key_in_an_error_leaves_no_trace_of_it(server, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    teacher = _teacher(server, monkeypatch)
    (reply,) = teacher.generate([_req("who [[echo]]")])
    assert reply.error == "HTTP 401: AuthenticationError (invalid credentials: Bearer ***) (not retried)"
    assert SECRET not in caplog.text
    teacher.close()


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_every_hostile_reply_is_one_requests_problem(server, monkeypatch, kind):
    """Nesting 100,000 deep in any field, counts of 10^30, NaN, wrong types: a MalformedReply
    for that request (retried), never an exception out of `generate`; lone surrogates come
    back repaired, so the next request can be sent."""
    teacher = _teacher(server, monkeypatch, max_retries=1)
    bad, good = teacher.generate([_req(f"q [[{kind} always]]"), _req("fine")])
    assert good.error is None
    if kind.startswith("surrogate"):
        assert bad.error is None
        out = bad.outputs[0]
        (out.text + out.thinking).encode("utf-8")  # no lone surrogate left: this would raise
        assert "\ufffd" in out.text + out.thinking
        (echo,) = teacher.generate([_req(out.text + out.thinking)])  # a next stage's prompt built from it
        assert echo.error is None
    else:
        assert bad.error.startswith("MalformedReply: ") and bad.error.endswith("(after 2 attempts)"), bad.error
    teacher.close()


def test_a_redirect_to_another_origin_is_refused_and_one_within_it_followed(server, monkeypatch):
    """A 307 keeps the body: followed to another host or port it would carry the prompts (and
    the key) where the recipe never pointed."""
    elsewhere = FaultServer()
    try:
        server.redirect_url = elsewhere.url
        teacher = _teacher(server, monkeypatch, max_retries=2)
        away, home = teacher.generate([_req("q [[redirect always]]"), _req("r [[redirect_local x1]]")])
        assert away.error.startswith("RedirectRefused: the endpoint redirects to another origin (http://127.0.0.1:")
        assert away.error.endswith("(not retried)") and elsewhere.bodies == []
        assert home.error is None and home.outputs[0].text.endswith("Answer: 4")
        teacher.close()
    finally:
        server.redirect_url = None
        elsewhere.close()
