import pytest

from pipelines.config import ConfigError
from pipelines.core.record import TeacherOutput
from pipelines.prompting import prompt_hash, render, template_inputs
from pipelines.recipe import SyntheticSource, load_recipe
from pipelines.sources.synthetic import make_record
from pipelines.stages import build_stages
from pipelines.teachers.base import TeacherReply

RECORD = make_record(1, SyntheticSource(image_size=64))


def test_templates_are_strict_about_missing_variables():
    with pytest.raises(ValueError, match="undefined"):
        render("think/v1", question="Q?", choices=[])


def test_the_think_template_may_only_see_extraction_and_question(tmp_path):
    assert set(template_inputs("think/v1")) <= {"extraction", "question", "choices"}
    leaky = tmp_path / "leaky.jinja"
    leaky.write_text("{{ extraction }} {{ statements }} {{ question }}")
    with pytest.raises(ConfigError, match="statements"):
        build_stages(load_recipe("quickstart", [f"stages.think.template={leaky}"]))


def test_unknown_template_is_a_recipe_error():
    with pytest.raises(ConfigError, match="no prompt template 'extraction/v9'"):
        build_stages(load_recipe("quickstart", ["stages.extraction.template=extraction/v9"]))


def test_prompts_requests_and_parsing():
    stages = {s.name: s for s in build_stages(load_recipe("quickstart"))}
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
    stage = build_stages(load_recipe("quickstart"))[0]
    r = stage.apply(RECORD, stage.requests(RECORD), [TeacherReply(error="HTTP 500")])
    assert (r.status, r.reason, r.detail) == ("failed", "statements_teacher_error", "HTTP 500")
    assert stage.requests(r) == [] and stage.apply(r, [], []) is r
