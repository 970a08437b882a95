"""A whole recipe through the openai backend against a loopback endpoint with faults."""

import json

from pipelines.commands.run import run
from pipelines.config.recipe import read_recipe
from tests.fault_server import FaultServer
from tests.published import published_rows


def test_faults_end_as_failed_rows_and_everything_else_goes_on(tmp_path, monkeypatch):
    # Every prompt of a think turn whose question mentions the left beaker fails for good;
    # every first attempt at an extraction is rate-limited and then passes.
    server = FaultServer(answer="Reasoning.\nAnswer: 4")
    monkeypatch.setenv("ET_TEST_KEY", "sk-never-logged")
    try:
        recipe = read_recipe("quickstart", [
            "sources.0.synthetic.num_records=16", "sources.0.synthetic.image_size=64", "sources.0.synthetic.families=[beakers]",
            "teacher.backend=openai", "teacher.model=served", f"teacher.openai.base_url={server.url}",
            "teacher.openai.api_key_env=ET_TEST_KEY", "teacher.openai.max_retries=2", "teacher.openai.backoff_s=0.01",
            "teacher.openai.timeout_s=2", "stages.think.sampling.n=1",
            "stages.think.template=" + str(_template(tmp_path)), "stages.extraction.template=" + str(_flaky(tmp_path)),
            f"output.dir={tmp_path / 'out'}", f"cache.dir={tmp_path / 'cache'}",
            "output.max_failed_share=1", "output.min_kept=0",  # publish the failed rows: they are what this test reads
        ])
        outcome = run(recipe)
    finally:
        server.close()
    f = outcome.funnel.to_dict()
    assert f["in"] == 16 == f["kept"] + f["rejected"] + f["failed"]
    assert f["failed"] > 0 and set(f["failed_by_reason"]) == {"think_teacher_error"}
    rejected = published_rows(str(outcome.out_dir), "rejected")
    failed = [r for r in rejected if r["status"] == "failed"]
    assert len(failed) == f["failed"]
    assert all(r["detail"] == "HTTP 500: InternalServerError (after 3 attempts)" for r in failed)
    assert all(any("left beaker" in q for q in r["questions"]) for r in failed)
    # every record that failed had at least one think request that failed for good
    assert f["teacher_errors"] >= f["failed"]
    # the rate limit on extraction was retried away: each extraction prompt took two attempts
    extraction_attempts = [n for prompt, n in server.attempts.items() if "[[429 x1]]" in prompt]
    assert len(extraction_attempts) == 16 and set(extraction_attempts) == {2}
    assert "sk-never-logged" not in (outcome.out_dir / "README.md").read_text()


def _template(tmp_path):
    p = tmp_path / "think_faulty.jinja"
    p.write_text("{{ extraction }}\nQuestion: {{ question }}{% if 'left beaker' in question %} [[500 always]]{% endif %}"
                 "{% for c in choices %}\n{{ c }}{% endfor %}")
    return p


def _flaky(tmp_path):
    p = tmp_path / "extraction_flaky.jinja"
    p.write_text("Describe the image. [[429 x1]]{% for s in statements %}\n- {{ s }}{% endfor %}")
    return p


def test_thirty_percent_of_attempts_failing_at_random_loses_nothing(tmp_path):
    """The fast variant of tests/bench/bench_faults.py."""
    from tests.bench.bench_faults import run_faults

    r = run_faults(records=24, fault_rate=0.3, retries=2, work=tmp_path)
    f = r["funnel"]
    assert f["in"] == 24 == f["kept"] + f["rejected"] + f["failed"]
    assert r["published"] == {"extraction": f["kept"], "rejected": f["rejected"] + f["failed"]}
    assert r["rows_without_reason"] == 0 and sum(r["faults"].values()) > 0.2 * r["attempts"]
    assert len(r["faults"]) >= 4  # mixed kinds
    assert all(d.endswith("(after 3 attempts)") for d in r["failed_details"])  # each failure retried, then given up
    assert f["kept"] > 0.5 * f["in"]  # retries carried most records through


def test_teacher_batches_are_filled_to_batch_size(tmp_path, monkeypatch):
    """Beam's adaptive batching would start at one record and grow; teacher batches are
    filled to `batch_size` (the untimed variant of tests/bench/bench_saturation.py)."""
    import pipelines.teachers as teachers
    from tests.bench.bench_overhead import InstantTeacher

    calls = []

    class Counting(InstantTeacher):
        def generate(self, requests):
            calls.append((requests[0].meta["stage"], len(requests)))
            return super().generate(requests)

    monkeypatch.setattr(teachers, "_build", lambda config: Counting())
    run(read_recipe("quickstart", [
        "sources.0.synthetic.num_records=40", "sources.0.synthetic.image_size=64", "teacher.backend=openai",
        "teacher.model=served", "teacher.openai.base_url=http://127.0.0.1:9/v1", "teacher.batch_size=16", "teacher.preflight=false",
        "filters=[{name: degeneration}]", f"output.dir={tmp_path / 'out'}", "cache.dir=null"]))
    statements = [n for stage, n in calls if stage == "statements"]  # one request per record
    assert sorted(statements, reverse=True) == [16, 16, 8], calls


def test_the_verify_stage_against_a_loopback_endpoint(tmp_path):
    """The judge on an OpenAI-compatible endpoint: the schema goes out as `response_format`,
    a numbered-lines reply is parsed, and a judge call that fails for good fails its record."""
    verdicts = "\n".join(f"{i}: supported" for i in range(1, 40))
    server = FaultServer(answer=verdicts)
    template = tmp_path / "verify_faulty.jinja"
    template.write_text("{% for c in claims %}{{ loop.index }}. {{ c }}\n{% endfor %}{% for e in evidence %}{{ e }}\n{% endfor %}"
                        "{% if 'circle' in claims|join(' ') %}[[500 always]]{% endif %}{{ 'JSON' if json }}")
    try:
        recipe = read_recipe("quickstart", [
            "sources.0.synthetic.num_records=12", "sources.0.synthetic.image_size=64", "sources.0.synthetic.families=[beakers, shapes]",
            "stages.verify.enabled=true", "stages.verify.sentences=true", f"stages.verify.template={template}",
            "stages.verify.teacher.backend=openai", "stages.verify.teacher.model=judge", f"stages.verify.teacher.openai.base_url={server.url}",
            "stages.verify.teacher.openai.api_key_env=NO_KEY_NEEDED", "stages.verify.teacher.openai.max_retries=0",
            "filters=[{name: judged}]", f"output.dir={tmp_path / 'out'}", f"cache.dir={tmp_path / 'cache'}",
            "output.max_failed_share=1", "output.min_kept=0",
        ])
        outcome = run(recipe)
    finally:
        server.close()
    f = outcome.funnel.to_dict()
    assert f["in"] == 12 == f["kept"] + f["rejected"] + f["failed"]
    assert f["kept"] > 0 and f["rejected"] == 0  # every claim judged supported, from numbered lines
    assert f["failed"] > 0 and set(f["failed_by_reason"]) == {"verify_teacher_error"}
    rejected = published_rows(str(outcome.out_dir), "rejected")
    assert all("circle" in " ".join(r["statements"]) or "circle" in (r["extraction"] or "") for r in rejected)
    from pipelines.commands.preflight import PROBE

    formats = [b.get("response_format") for b in server.bodies if b["messages"][0]["content"] != PROBE]
    assert formats and all(fmt["type"] == "json_schema" and fmt["json_schema"]["schema"]["required"] == ["verdicts"] for fmt in formats)


def test_a_run_survives_every_hostile_reply_shape(tmp_path):
    """Half of all attempts answered with one of the hostile shapes (nesting 100,000 deep in
    each field, counts of 10^30, NaN, lone surrogates, wrong types, empty choices): the run
    finishes, in = kept + rejected + failed, every failed row says why, and text repaired from
    surrogates went on (test below)."""
    from tests.fault_server import HOSTILE

    server = FaultServer(answer="The left beaker holds 4 particles.\nAnswer: 4", fault_rate=0.5, seed=3,
                         random_kinds=tuple(sorted(HOSTILE)))
    try:
        outcome = run(read_recipe("quickstart", [
            "sources.0.synthetic.num_records=24", "sources.0.synthetic.image_size=64", "sources.0.synthetic.families=[beakers]",
            "teacher.backend=openai", "teacher.model=served", f"teacher.openai.base_url={server.url}",
            "teacher.openai.max_retries=1", "teacher.openai.backoff_s=0.01", "teacher.openai.timeout_s=5",
            "stages.think.sampling.n=1", f"output.dir={tmp_path / 'out'}", "cache.dir=null",
            "output.max_failed_share=1", "output.min_kept=0", "teacher.preflight=false",  # faults from the first request on
        ]))
    finally:
        server.close()
    f = outcome.funnel.to_dict()
    assert f["in"] == 24 == f["kept"] + f["rejected"] + f["failed"] and f["failed"] > 0
    assert len(server.faults) >= 15  # most shapes were served
    rejected = published_rows(str(outcome.out_dir), "rejected")
    failed = [r for r in rejected if r["status"] == "failed"]
    assert len(failed) == f["failed"] and all(r["reason"].endswith("_teacher_error") for r in failed)
    assert all(r["detail"].startswith("MalformedReply: ") and r["detail"].endswith("(after 2 attempts)") for r in failed)


def test_a_reply_with_a_lone_surrogate_is_repaired_and_sent_on(tmp_path):
    """The first reply (an extraction: nothing else can be asked yet) carries a lone surrogate:
    it comes back with U+FFFD in its place, goes on into the think prompt and the published row."""
    server = FaultServer(answer="The left beaker holds 4 particles.\nAnswer: 4", first_kinds=("surrogate",))
    try:
        outcome = run(read_recipe("quickstart", [
            "sources.0.synthetic.num_records=1", "sources.0.synthetic.image_size=64", "sources.0.synthetic.families=[beakers]",
            "sources.0.synthetic.max_turns=1", "teacher.backend=openai", "teacher.model=served",
            f"teacher.openai.base_url={server.url}", "stages.think.sampling.n=1", f"output.dir={tmp_path / 'out'}",
            "cache.dir=null", "output.min_kept=0", "teacher.preflight=false",
        ]))
    finally:
        server.close()
    assert outcome.funnel.to_dict()["failed"] == 0
    later = [json.dumps(b["messages"]) for b in server.bodies[1:]]
    assert later and any("\\ufffd end" in p for p in later)
    rows = [r for config in ("default", "rejected") for r in _published(outcome.out_dir, config)]
    assert any("\ufffd end" in json.dumps({k: v for k, v in r.items() if k != "image"}, ensure_ascii=False) for r in rows)


def _published(out_dir, config):
    try:
        return list(published_rows(str(out_dir), config))
    except ValueError:  # a config with no rows is not written
        return []
