"""Every common Hub VQA schema maps through recipe YAML alone, with the right gold on every
row: the README's snippets are read as they are written, their Hub paths pointed at local
fixtures of the same schema (tests/sources/hub_schemas.py), and each row checked."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
import pytest
import yaml

from pipelines.config import ConfigError, build
from pipelines.config.source_config import IngestConfig, SourceConfig
from pipelines.sources import iter_records
from tests.sources.hub_schemas import BUILDERS

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_sources() -> dict[str, dict]:
    text = README.read_text()
    block = re.search(r"<!-- schemas -->\n```yaml\n(.*?)```", text, re.S)
    assert block, "README.md lost its schemas block"
    return {s["name"]: s for s in yaml.safe_load(block.group(1))["sources"]}


def localised(source: dict, where: dict) -> SourceConfig:
    """The snippet with its Hub path (or JSON file) and image folder replaced by the fixture's."""
    return build(SourceConfig, localised_dict(source, where), "source")


def records(source: dict, tmp_path: Path, **changes):
    where, expected = BUILDERS[source["name"]](tmp_path)
    config = localised({**source, **changes}, where)
    return list(iter_records(config, IngestConfig())), expected


def test_the_readme_names_a_snippet_for_every_schema():
    assert sorted(readme_sources()) == sorted(BUILDERS)


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_each_schema_maps_with_the_right_gold_on_every_row(name, tmp_path):
    got, expected = records(readme_sources()[name], tmp_path)
    assert len(got) == len(expected), [r.origin for r in got]
    for record, want in zip(got, expected):
        if want[0] == "rejected":
            assert (record.status, record.reason) == ("rejected", want[1]), (record.origin, record.reason, record.detail)
            for word in want[2]:
                assert word in record.detail, (record.origin, record.detail, word)
            continue
        assert record.status == "ok", (record.origin, record.reason, record.detail)
        assert len(record.turns) == len(want)
        for turn, (question, choices, gold, kind, meta) in zip(record.turns, want):
            assert (turn.question, turn.choices, turn.answer, turn.answer_type) == (question, choices, gold, kind), record.origin
            for key, value in meta.items():
                assert turn.meta.get(key) == value, (record.origin, key, turn.meta)


def test_unanswerable_can_be_kept_as_a_gold_answer(tmp_path):
    got, _ = records(readme_sources()["vizwiz"], tmp_path, unanswerable="gold")
    flagged = got[1]
    assert flagged.status == "ok" and flagged.turns[0].answer == "unanswerable"
    assert flagged.turns[0].meta["answerable"] is False and flagged.turns[0].answer_type == "text"


def test_a_digit_answer_that_is_both_an_option_and_an_index_is_not_guessed(tmp_path):
    source = readme_sources()["ai2d"]
    auto = {**source, "hf": {**source["hf"], "columns": {"choices": "options"}}}  # without answer_is: index
    got, _ = records(auto, tmp_path)
    assert got[0].status == "ok" and got[0].turns[0].answer == "B"  # "1" is no option's text: an index
    assert (got[1].status, got[1].reason) == ("rejected", "choices_answer_ambiguous")
    assert "answer_is" in got[1].detail


def test_an_answer_given_as_option_text_or_letter_both_resolve(tmp_path):
    source = readme_sources()["mmstar"]
    where, _ = BUILDERS["mmstar"](tmp_path)
    import datasets

    ds = datasets.load_dataset("parquet", data_files=where["path"], split="train")
    ds = ds.map(lambda r, i: {"answer": ["The suitcase is on the book.", "(B) 2", "No"][i]}, with_indices=True)
    path = tmp_path / "mmstar-text.parquet"
    ds.to_parquet(str(path))
    got = list(iter_records(localised(source, {"path": str(path)}), IngestConfig()))
    assert [r.turns[0].answer for r in got] == ["A", "B", "B"]


def test_a_mapping_naming_a_missing_column_fails_before_the_run(tmp_path):
    source = readme_sources()["scienceqa"]
    bad = {**source, "hf": {**source["hf"], "columns": {"context": ["lecture_notes"]}}}
    with pytest.raises(ConfigError, match="lecture_notes"):
        records(bad, tmp_path)
    templated = {**source, "hf": {**source["hf"], "columns": {"question_template": "{{ question }} ({{ nonexistent }})"}}}
    with pytest.raises(ConfigError, match="nonexistent"):
        records(templated, tmp_path)


def test_a_question_template_assembles_the_question_from_columns(tmp_path):
    source = readme_sources()["scienceqa"]
    templated = {**source, "hf": {**source["hf"], "columns": {"question_template": "[{{ subject }}] {{ question }}"}}}
    got, _ = records(templated, tmp_path)
    assert got[0].turns[0].question == "[natural science] Which number is shown on the sign?"
    assert got[0].turns[0].answer == "B"


def test_inspect_shows_how_rows_were_understood_and_why_others_were_rejected(tmp_path, capsys):
    from pipelines.commands.cli import main

    sources = []
    for name in ("scienceqa", "ocrvqa"):
        where, _ = BUILDERS[name](tmp_path)
        snippet = readme_sources()[name]
        sources.append({**snippet, "hf": {**snippet["hf"], **where}})
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": "look", "sources": sources, "output": {"dir": str(tmp_path / "out")},
                                      "teacher": {"backend": "openai", "model": "m", "openai": {"base_url": "http://127.0.0.1:9/v1"}}}))
    assert main(["inspect", str(recipe), "--limit", "3", "--show", "1"]) == 0
    text = capsys.readouterr().out
    assert "source 'scienceqa'" in text and "first 3 rows -> 2 usable, 1 rejected" in text  # --limit counts rows read
    assert "gold:     B = '2'   (choice)" in text and '"subject": "natural science"' in text
    assert "no_image" in text and "the record has no image" in text
    assert "source 'ocrvqa'" in text and "turns_mismatch" in text and "question: Is this a comedy book?" in text
    assert main(["inspect", str(recipe), "--limit", "4", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [s["read"] for s in report] == [4, 2] and report[0]["rejected"]["choices_answer_absent"][0] == 1
    assert not (tmp_path / "out").exists()  # inspect writes nothing


@pytest.mark.parametrize("source, schema", [("ocr_vqa", "ocrvqa"), ("vqav2", "cauldron-ai2d"), ("gqa", "gqa"),
                                            ("textvqa", "textvqa"), ("vizwiz", "vizwiz"), ("scienceqa", "scienceqa")])
def test_the_bundled_paper_hub_recipe_maps_each_set_with_the_right_gold(source, schema, tmp_path):
    from pipelines.config import to_plain
    from pipelines.config.recipe import read_recipe

    config = next(s for s in read_recipe("paper-hub").sources if s.name == source)
    snippet = {k: v for k, v in to_plain(config).items() if k in ("kind", "name", "license", "unanswerable", config.kind)}
    got, expected = records({**snippet, "name": schema}, tmp_path)
    assert [(r.status, r.reason, [(t.question, t.answer) for t in r.turns] if r.status == "ok" else None) for r in got] == \
        [("rejected", w[1], None) if w[0] == "rejected" else ("ok", None, [(t[0], t[2]) for t in w]) for w in expected]


def test_mapped_sets_run_through_the_pipeline_and_publish_gold_and_metadata(tmp_path):
    from tests.sources.helpers import conserved, load, run_recipe

    sources = []
    for name in ("scienceqa", "mmstar", "ocrvqa"):
        where, _ = BUILDERS[name](tmp_path / "data")
        snippet = readme_sources()[name]
        sources.append(localised_dict(snippet, where))
    outcome = run_recipe(tmp_path / "run", sources)
    assert conserved(outcome) and outcome.funnel.kept == 2 + 3 + 1
    assert outcome.funnel.rejected_by_reason == {"no_image": 1, "choices_answer_absent": 1, "turns_mismatch": 1}
    rows = {r["question"]: r for r in load(outcome, "reasoning")}
    sign = rows["Which number is shown on the sign?"]
    assert (sign["answer"], sign["choices"], sign["answer_type"]) == ("B", ["1", "2", "4"], "choice")
    assert sign["meta"]["subject"] == "natural science" and sign["meta"]["title"] is None  # one struct for every source's rows
    assert rows["How many dots are there?"]["meta"]["l2_category"] == "single-instance reasoning"
    book = rows["Is this a comedy book?"]["meta"]
    assert {k: v for k, v in book.items() if v is not None} == {"title": "Garden Design", "genre": "Crafts", "turn": 2}
    features = datasets.load_dataset(str(outcome.out_dir), "reasoning", split="train").features["meta"]
    assert features["turn"] == datasets.Value("int64") and features["answers"] == datasets.List(datasets.Value("string"))
    assert features["subject"] == datasets.Value("string")  # typed from the source's own features


def localised_dict(source: dict, where: dict) -> dict:
    """The snippet as plain data, pointed at the fixture (a local file has one split, "train")."""
    data = yaml.safe_load(yaml.safe_dump(source))
    data[data["kind"]].update(where)
    if data["kind"] == "hf":
        data["hf"].pop("name", None), data["hf"].pop("split", None)
    return data


def test_a_conversation_source_checks_no_question_template_columns():
    from pipelines.config.source_config import Columns
    from pipelines.sources.mapping import needed_columns

    columns = Columns(image="images", conversations="texts", question_template="{{ nowhere }}")
    assert needed_columns(columns) == ["texts", "images"]


def test_inspect_never_prints_a_control_character_to_the_terminal(tmp_path, capsys):
    """Questions holding ESC sequences (colour, a title change, a cursor move), a right-to-left
    override and a lone C1 control come out escaped, as text."""
    from PIL import Image

    from pipelines.commands.cli import main

    Image.new("RGB", (32, 32), "red").save(tmp_path / "a.png")
    hostile = "What \x1b[2J\x1b]0;pwned\x07is \u202eshown\x9b here?"
    (tmp_path / "data.json").write_text(json.dumps([{"id": "x\x1b[31m", "image": "a.png", "conversations": [
        {"from": "human", "value": "<image>\n" + hostile}, {"from": "gpt", "value": "red\x1b[0m"}]}]))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": "look", "output": {"dir": str(tmp_path / "out")},
                                      "sources": [{"kind": "llava", "name": "s", "llava": {"json": str(tmp_path / "data.json")}}],
                                      "teacher": {"backend": "openai", "model": "m", "openai": {"base_url": "http://127.0.0.1:9/v1"}}}))
    for extra in ([], ["--json"]):
        assert main(["inspect", str(recipe), "--limit", "2", *extra]) == 0
        out = capsys.readouterr().out
        assert not any(c in out for c in "\x1b\x07\u202e\x9b") and "pwned" in out, out
