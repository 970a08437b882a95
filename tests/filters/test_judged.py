"""The verify stage and the `judged` filter: reply parsing, prompts per backend, the filter's
decisions, and a whole oracle run whose judge makes mistakes on purpose."""


import pytest

from filters.judged import judged
from pipelines.commands.run import run
from pipelines.config import ConfigError
from pipelines.config.recipe import SyntheticSource, read_recipe
from pipelines.core.record import Judgement
from pipelines.sources.synthetic import make_record
from pipelines.stages.verify import UNPARSED, parse_verdicts, schema
from pipelines.teachers.stage import build_stages
from tests.published import published_rows

S, C, N = "supported", "contradicted", "not stated"


@pytest.mark.parametrize("reply, n, want", [
    ('{"verdicts": ["supported", "contradicted", "not stated"]}', 3, [S, C, N]),
    ('Sure! Here you go:\n```json\n{"verdicts": ["supported", "not stated"]}\n```', 2, [S, N]),
    ('["Supported", "CONTRADICTED"]', 2, [S, C]),
    ('{"verdicts": [{"claim": 1, "verdict": "supported"}, {"claim": 2, "verdict": "unsupported"}]}', 2, [S, N]),
    ('{"verdicts": ["supported"]}', 3, [S, UNPARSED, UNPARSED]),  # too few: the rest unparsed
    ('{"verdicts": ["maybe", "supported"]}', 2, [UNPARSED, S]),
    ("1: supported\n2: contradicted\n3: not stated", 3, [S, C, N]),
    ("**1.** Supported\n**2.** Not stated - the text says nothing of it", 2, [S, N]),
    ("Claim 2: contradicted (it says 3)\nClaim 1: supported", 2, [S, C]),
    ("1) not_stated\n2) contradicts the description", 2, [N, C]),
    ("supported\ncontradicted", 2, [S, C]),  # unnumbered, one per line
    ("<think>1: contradicted</think>\n1: supported", 1, [S]),  # thinking is not the verdict
    ("I cannot judge these.", 2, [UNPARSED, UNPARSED]),
    ("", 1, [UNPARSED]),
])
def test_verdicts_are_parsed_from_json_or_lines(reply, n, want):
    assert parse_verdicts(reply, n) == want


def test_the_schema_asks_for_exactly_one_verdict_per_claim():
    s = schema(3)["properties"]["verdicts"]
    assert s["minItems"] == s["maxItems"] == 3 and s["items"]["enum"] == [S, C, N]


def _judged(*judgements, **params):
    record = make_record(0, SyntheticSource(image_size=64))
    from dataclasses import replace

    return judged(replace(record, judgements=tuple(judgements)), **params)


def test_judged_wants_every_statement_supported_and_no_sentence_contradicted():
    ok = Judgement("statement", "There are 3 red circles.", S)
    assert _judged(ok, Judgement("sentence", "A tree.", N)).keep  # detail the other samples left out
    v = _judged(ok, Judgement("statement", "The bus is red.", N))
    assert not v.keep and v.reason == "statement_judged_not_stated" and "The bus is red." in v.detail and v.score == 0.5
    assert _judged(ok, Judgement("sentence", "A cat sits.", C)).reason == "sentence_judged_contradicted"
    assert _judged(Judgement("sentence", "A cat sits.", N, "image")).reason == "sentence_judged_not_stated"  # not in the image
    assert _judged(Judgement("sentence", "A tree.", N), strict_sentences=True).reason == "sentence_judged_not_stated"
    assert _judged(Judgement("statement", "x", UNPARSED)).reason == "judge_unparsable"
    record = make_record(0, SyntheticSource(image_size=64))
    assert judged(record).reason == "judge_missing"


def _recipe(tmp_path, *extra):
    return read_recipe("quickstart", [
        "sources.0.synthetic.num_records=40", "sources.0.synthetic.image_size=96", "teacher.oracle.error_rate=0.5",
        "teacher.oracle.errors=[miscount, wrong_colour, invented_object]", "stages.verify.enabled=true",
        "stages.verify.sentences=true", f"output.dir={tmp_path / 'out'}", "cache.dir=null", "output.min_kept=0",
        'filters=[{name: judged}, {name: degeneration}]', *extra])


def test_a_judged_filter_needs_the_verify_stage():
    with pytest.raises(ConfigError, match="stages.verify.enabled"):
        read_recipe("quickstart", ['filters=[{name: judged}]'])


@pytest.mark.parametrize("backend, extra, wants_json", [
    ("vllm", [], True), ("transformers", [], False), ("openai", [], True), ("openai", ["stages.verify.teacher.openai.json_schema=false"], False)])
def test_the_prompt_asks_for_json_where_the_backend_can_be_held_to_a_schema(tmp_path, backend, extra, wants_json):
    endpoint = ["stages.verify.teacher.openai.base_url=http://127.0.0.1:9/v1"] if backend == "openai" else []
    recipe = _recipe(tmp_path, f"stages.verify.teacher.backend={backend}", "stages.verify.teacher.model=m", *endpoint, *extra)
    verify = next(s for s in build_stages(recipe) if s.name == "verify")
    record = make_record(1, recipe.sources[0].synthetic)
    from dataclasses import replace

    from pipelines.core.record import TeacherOutput

    record = replace(record, statements=("There are 2 red circles.",),
                     extractions=(TeacherOutput("There are 2 red circles. The sky is grey.", "stop"), TeacherOutput("Two red circles.", "stop")))
    requests = verify.requests(record)
    assert [r.meta["kind"] for r in requests] == ["statement", "sentence"]
    assert all((r.schema is not None) == wants_json for r in requests)
    text = requests[1].messages[0]["content"]
    assert "Two red circles." in text and "1. There are 2 red circles." in text and "2. The sky is grey." in text
    assert ('{"verdicts"' in text) == wants_json


def test_judging_against_the_image_attaches_it_and_no_text(tmp_path):
    recipe = _recipe(tmp_path, "stages.verify.with_image=true")
    verify = next(s for s in build_stages(recipe) if s.name == "verify")
    from dataclasses import replace

    from pipelines.core.record import TeacherOutput

    record = replace(make_record(1, recipe.sources[0].synthetic), statements=("A fact.",),
                     extractions=(TeacherOutput("Secret description.", "stop"),))
    statement, sentence = verify.requests(record)
    for r in (statement, sentence):
        assert r.messages[0]["content"][0]["type"] == "image_url"
    assert "Secret description." not in statement.messages[0]["content"][-1]["text"]  # the image is the evidence
    assert "1. Secret description." in sentence.messages[0]["content"][-1]["text"]  # the sentence is the claim


def _rejected(outcome):
    return list(published_rows(str(outcome.out_dir), "rejected")) if outcome.funnel.rejected else []


def test_an_exact_judge_catches_what_was_injected_and_nothing_else(tmp_path):
    outcome = run(_recipe(tmp_path, "stages.verify.with_image=true"))
    rejected = _rejected(outcome)
    assert outcome.funnel.failed == 0 and rejected
    for row in rejected:  # every rejection is an injected mistake, caught by the judge
        assert row["injected"] and row["reason"].startswith(("statement_judged", "sentence_judged")), row
    injected = sum(bool(r["injected"]) for r in rejected)
    kept = published_rows(str(outcome.out_dir), "extraction")
    assert injected + sum(bool(r) for r in kept["injected"]) > 10
    assert not any(kept["injected"])  # and nothing injected got through
    verify = kept[0]["provenance"]["verify"]
    assert verify["template"] == "verify/v1" and "image" in verify["inputs"] and "claims" in verify["inputs"]
    assert "| verify | oracle |" in (outcome.out_dir / "README.md").read_text()  # the card names the stage


def test_a_judge_that_errs_rejects_clean_records_and_says_which_claim(tmp_path):
    outcome = run(_recipe(tmp_path, "teacher.oracle.judge_error_rate=0.3", "teacher.oracle.error_rate=0"))
    rejected = _rejected(outcome)
    assert rejected and all(not r["injected"] for r in rejected)
    assert all(r["reason"] in ("statement_judged_contradicted", "sentence_judged_contradicted") and "'" in r["detail"] for r in rejected)
