"""The openai backend against a real HTTP server on loopback that misbehaves on demand."""

import logging

import pytest

from pipelines.recipe import OpenAIOptions, SyntheticSource, TeacherConfig
from pipelines.sources.synthetic import make_record
from pipelines.teachers.base import ChatRequest, Sampling, user_message
from pipelines.teachers.openai_teacher import OpenAITeacher
from tests.fault_server import FaultServer

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
    with pytest.raises(ValueError, match="base_url is required"):
        OpenAITeacher(TeacherConfig(backend="openai", model="m"))
