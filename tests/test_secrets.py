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


def test_user_info_in_urls_is_removed_everywhere():
    assert scrub("POST http://admin:hunter2@10.0.0.5:8000/v1 failed") == "POST http://***@10.0.0.5:8000/v1 failed"
    assert scrub("mail me: ops@example.com") == "mail me: ops@example.com"


def test_the_published_recipe_and_card_hold_no_credential(tmp_path):
    """A password in the endpoint's URL and keys in `extra_body`: the run uses them, the
    published recipe.yaml and card (which `publish` uploads) show *** in their place."""
    from pipelines.commands.run import run
    from pipelines.config.recipe import read_recipe
    from tests.fault_server import FaultServer

    server = FaultServer(answer="The left beaker holds 4 particles.\nAnswer: 4")
    url = server.url.replace("http://", "http://admin:hunter2-pw@")
    try:
        outcome = run(read_recipe("quickstart", [
            "sources.0.synthetic.num_records=6", "sources.0.synthetic.image_size=64", "teacher.backend=openai",
            "teacher.model=served", f"teacher.openai.base_url={url}", "stages.think.sampling.n=1",
            "teacher.openai.extra_body={api_key: extra-secret-1234, headers: {Authorization: Basic c2VjcmV0LXBhc3M=}, top_k: 5}",
            "description=served at " + url, f"output.dir={tmp_path / 'out'}", "cache.dir=null", "output.min_kept=0",
        ]))
    finally:
        server.close()
    assert server.bodies and server.bodies[0]["api_key"] == "extra-secret-1234"  # the endpoint got what it needs
    published = "".join(p.read_text() for p in (outcome.out_dir / "recipe.yaml", outcome.out_dir / "README.md"))
    for secret in ("hunter2-pw", "extra-secret-1234", "c2VjcmV0LXBhc3M="):
        assert secret not in published
    assert "http://***@127.0.0.1" in published and "top_k: 5" in published
