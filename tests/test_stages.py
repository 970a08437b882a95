import pytest

from pipelines.config import ConfigError
from pipelines.config.recipe import SyntheticSource, read_recipe
from pipelines.core.record import TeacherOutput
from pipelines.sources.synthetic import make_record
from pipelines.stages.prompting import prompt_hash, render, template_inputs
from pipelines.teachers.base import TeacherReply
from pipelines.teachers.stage import build_stages

RECORD = make_record(1, SyntheticSource(image_size=64))


def test_templates_are_strict_about_missing_variables():
    with pytest.raises(ValueError, match="undefined"):
        render("think/v1", question="Q?", choices=[])


def test_the_think_template_may_only_see_extraction_and_question(tmp_path):
    assert set(template_inputs("think/v1")) <= {"extraction", "question", "choices"}
    leaky = tmp_path / "leaky.jinja"
    leaky.write_text("{{ extraction }} {{ statements }} {{ question }}")
    with pytest.raises(ConfigError, match="statements"):
        build_stages(read_recipe("quickstart", [f"stages.think.template={leaky}"]))


def test_unknown_template_is_a_recipe_error():
    with pytest.raises(ConfigError, match="no prompt template 'extraction/v9'"):
        build_stages(read_recipe("quickstart", ["stages.extraction.template=extraction/v9"]))


def test_prompts_requests_and_parsing():
    stages = {s.name: s for s in build_stages(read_recipe("quickstart"))}
    statements = stages["statements"]
    (req,) = statements.requests(RECORD)
    assert isinstance(req.messages[0]["content"], str)  # text only
    reply = TeacherReply((TeacherOutput("1. The bus is red.\n\n- The sky is blue.", "stop"),))
    r = statements.apply(RECORD, [req], [reply])
    assert r.statements == ("The bus is red.", "The sky is blue.")
    prov = r.provenance["statements"]
    assert prov.template == "statements/v1" and "qa_pairs" in prov.inputs
    assert prov.prompt_sha256 == prompt_hash(req.messages[0]["content"])

    (ext,) = stages["extraction"].requests(r)
    assert ext.messages[0]["content"][0]["type"] == "image_url"
    assert "The bus is red." in ext.messages[0]["content"][1]["text"]

    r = r.add(extractions=(TeacherOutput("An image.", "stop"),))
    think = stages["think"].requests(r)
    assert len(think) == len(RECORD.turns)
    for req, turn in zip(think, RECORD.turns):
        text = req.messages[0]["content"]
        assert turn.question in text and "An image." in text
        assert f"Answer: {turn.answer}" not in text  # the gold answer is never shown


def test_a_teacher_error_fails_the_record_with_the_stage_in_the_reason():
    stage = build_stages(read_recipe("quickstart"))[0]
    r = stage.apply(RECORD, stage.requests(RECORD), [TeacherReply(error="HTTP 500")])
    assert (r.status, r.reason, r.detail) == ("failed", "statements_teacher_error", "HTTP 500")
    assert stage.requests(r) == [] and stage.apply(r, [], []) is r


def test_the_stage_registry_is_the_one_list():
    """The recipe's `stages:` keys, their defaults, the provenance columns and the active
    stages come from `pipelines.stages.STAGES`; each stage reads and writes Record fields."""
    import dataclasses

    from pipelines.config.recipe import STAGE_DEFAULTS, StagesConfig
    from pipelines.core.record import Record
    from pipelines.publishing.rows import PROVENANCE
    from pipelines.stages import STAGE_ORDER, STAGES
    from pipelines.teachers.stage import active_stages

    assert STAGE_ORDER == ("statements", "focus", "extraction", "verify", "think")
    assert [f.name for f in dataclasses.fields(StagesConfig)] == [*STAGE_ORDER, "student_prompt"]
    assert tuple(STAGE_DEFAULTS) == tuple(PROVENANCE) == STAGE_ORDER
    record_fields = {f.name for f in dataclasses.fields(Record)} | {n for n, v in vars(Record).items() if isinstance(v, property)}
    for spec in STAGES.values():
        assert set(spec.reads) <= record_fields and set(spec.writes) <= record_fields, spec
        assert getattr(read_recipe("quickstart").stages, spec.name).template == spec.template
    assert active_stages(read_recipe("quickstart")) == tuple(n for n in STAGE_ORDER if n != "verify")
    assert "verify" in active_stages(read_recipe("quickstart", ["stages.verify.enabled=true"]))


def test_the_oracle_answers_by_what_a_stage_declares_it_writes(monkeypatch):
    """A stage the oracle has never heard of by name is answered by the field it writes."""
    from pipelines import stages
    from pipelines.config.recipe import TeacherConfig
    from pipelines.stages.focus import Focus
    from pipelines.teachers.oracle import OracleTeacher
    from pipelines.teachers.stage import Stage

    class Gaze(Focus):
        name = "gaze"

    monkeypatch.setitem(stages.STAGES, "gaze", Gaze())
    stage = Stage("gaze", "focus/v1", read_recipe("quickstart").stages.focus.sampling, TeacherConfig(backend="oracle"))
    requests = stage.requests(RECORD)
    (reply,) = OracleTeacher(TeacherConfig(backend="oracle")).generate(requests)
    assert stage.apply(RECORD, requests, [reply]).focus  # written by the oracle's focus writer
    requests[0].meta["stage"] = "unknown"
    (reply,) = OracleTeacher(TeacherConfig(backend="oracle")).generate(requests)
    assert "no answer for stage 'unknown'" in reply.error
