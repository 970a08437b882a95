"""The one scrubber: whatever an error text or a log line carries, no secret leaves."""

import logging

from pipelines.core.secrets import ScrubFilter, register_env, scrub


def test_credentials_by_shape_and_by_value(monkeypatch):
    monkeypatch.setenv("MY_GATEWAY_TOKEN", "plain-looking-value-123")  # the name says what it is
    monkeypatch.setenv("ENDPOINT_AUTH", "opaque0123456789")  # the recipe says what it is
    register_env("ENDPOINT_AUTH")
    text = ("401: invalid Bearer sk-proj-abcdef0123456789 for hf_AbCdEf0123456789xyz; api_key=zzzz-9999-yyyy "
            '{"authorization": "Basic dXNlcjpwYXNz"} token plain-looking-value-123 and opaque0123456789')
    clean = scrub(text)
    for secret in ("sk-proj-abcdef0123456789", "AbCdEf0123456789xyz", "zzzz-9999-yyyy", "dXNlcjpwYXNz",
                   "plain-looking-value-123", "opaque0123456789"):
        assert secret not in clean
    assert clean.startswith("401: invalid Bearer *** for hf_***; api_key=***")


def test_ordinary_text_is_left_alone():
    for text in ("HTTP 500: InternalServerError", "image: /data/img/a.png is not a regular file", "the token count is 12",
                 "connection error (after 3 attempts)", None, ""):
        assert scrub(text) == text


def test_log_handlers_scrub_every_record(monkeypatch, caplog):
    monkeypatch.setenv("SOME_API_KEY", "value-that-must-not-print")
    handler = logging.StreamHandler()
    handler.addFilter(ScrubFilter())
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "failed with %s", ("value-that-must-not-print",), None)
    handler.filter(record)
    assert record.getMessage() == "failed with ***"
