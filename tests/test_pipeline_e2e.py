"""End to end: recipe -> Beam pipeline -> published dataset, read back with `datasets`."""

import json
from collections import Counter

import datasets
import pytest

from pipelines import teachers
from pipelines.commands.run import run
from pipelines.config.recipe import read_recipe
from pipelines.sources.synthetic import make_record
from pipelines.teachers.base import TeacherReply
from tests.published import published_rows

N = 20
FILTER_REASONS = {"answer_wrong", "answer_unparsable", "extraction_insufficient", "majority_wrong", "reasoning_inconsistent",
                  "truncated", "refusal", "repetition", "too_short", "too_long", "answer_leak", "focus_leak",
                  "statements_count_mismatch", "statement_not_covered", "extraction_disagreement"}


def _recipe(tmp_path, *extra):
    return read_recipe("quickstart", [
        f"sources.0.synthetic.num_records={N}", "sources.0.synthetic.image_size=128", "teacher.oracle.error_rate=0.5",
        f"output.dir={tmp_path / 'out'}", f"cache.dir={tmp_path / 'cache'}", *extra,
    ])


def _load(out, config):
    return published_rows(str(out), config)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    recipe = _recipe(tmp)
    return recipe, run(recipe)


def test_conservation_in_the_funnel_and_in_the_files(published):
    recipe, outcome = published
    f = outcome.funnel.to_dict()
    assert f["in"] == N == f["kept"] + f["rejected"] + f["failed"]
    extraction, rejected = _load(outcome.out_dir, "extraction"), _load(outcome.out_dir, "rejected")
    assert len(extraction) == f["kept"] and len(rejected) == f["rejected"] + f["failed"]
    source_ids = {make_record(i, recipe.sources[0].synthetic).id for i in range(N)}
    published_ids = list(extraction["id"]) + list(rejected["id"])
    assert sorted(published_ids) == sorted(source_ids)  # every record exactly once
    assert sum(f["rejected_by_reason"].values()) == f["rejected"]
    assert Counter(rejected["reason"]) == Counter({**f["rejected_by_reason"], **f["failed_by_reason"]})


def test_reasons_follow_what_the_oracle_injected(published):
    _, outcome = published
    extraction, rejected = _load(outcome.out_dir, "extraction"), _load(outcome.out_dir, "rejected")
    assert set(rejected["reason"]) <= FILTER_REASONS
    assert len(rejected) > 0
    for row in rejected:
        assert row["injected"], f"{row['id']} was rejected ({row['reason']}) without an injected mistake"
    # here every record with a mistake is caught (the benchmark measures the rare misses: a
    # miscount or a wrong colour every other extraction sample happened to leave out)
    for row in extraction:
        assert row["injected"] == [], row["id"]
    by_kind = {r["injected"][0]["kind"]: r["reason"] for r in rejected}
    assert by_kind.get("invented_object", "extraction_disagreement") == "extraction_disagreement"
    assert by_kind.get("refusal", "refusal") == "refusal"
    assert by_kind.get("statement_mismatch", "statements_count_mismatch") == "statements_count_mismatch"


def test_the_dataset_loads_with_images_and_the_right_columns(published):
    recipe, outcome = published
    extraction = _load(outcome.out_dir, "extraction")
    row = extraction[0]
    assert row["image"].size == (128, 128)
    assert row["prompt"].startswith("Describe the fine-grained content of the image") and row["focus"] in row["prompt"]
    assert row["extraction"] and row["statements"]
    prov = row["provenance"]  # a struct per stage; verify did not run
    assert {k for k, v in prov.items() if v} == {"statements", "focus", "extraction", "think"} and prov["verify"] is None
    assert prov["think"]["inputs"] == ["choices", "extraction", "question"]
    reasoning = _load(outcome.out_dir, "reasoning")
    assert len(reasoning) == outcome.funnel.reasoning_rows
    assert set(reasoning["record_id"]) == set(extraction["id"])
    for r in reasoning:
        assert r["reasoning"].splitlines()[-1].startswith("Answer:")
    streamed = next(iter(published_rows(str(outcome.out_dir), "extraction", streaming=True)))
    assert streamed["id"] in set(extraction["id"])


def test_typed_columns_filter_and_sort_without_parsing(published):
    """scores, provenance and injected load as structs and lists: `datasets.filter` reads
    a score directly, and the reasoning config's prompt is the think stage's prompt."""
    recipe, outcome = published
    extraction = _load(outcome.out_dir, "extraction")
    assert extraction.features["scores"] == {f.name: datasets.Value("float64") for f in recipe.filters}
    covered = extraction.filter(lambda r: r["scores"]["statement_coverage"] > 0.9)
    assert 0 < len(covered) <= len(extraction)
    assert all(r["scores"]["statement_coverage"] > 0.9 for r in covered)
    ranked = extraction.flatten().sort("scores.statement_coverage", reverse=True)["scores.statement_coverage"]
    assert ranked == sorted(ranked, reverse=True) and isinstance(ranked[0], float)
    assert extraction[0]["provenance"]["extraction"]["sampling"]["n"] == recipe.stages.extraction.sampling.n
    rejected = _load(outcome.out_dir, "rejected")
    assert {i["kind"] for r in rejected for i in r["injected"]} and all(isinstance(i["stage"], str) for r in rejected for i in r["injected"])
    # every score means one thing (in [0, 1], 1 the best); counts have their own column
    scores = [v for rows in (extraction, rejected) for r in rows for v in r["scores"].values() if v is not None]
    assert scores and all(0.0 <= v <= 1.0 for v in scores)
    assert all(r["scores"]["statement_count"] < 1 for r in rejected if r["reason"] == "statements_count_mismatch")
    assert all(r["counts"]["statements"] == len(r["statements"]) and r["counts"]["questions"] == len(r["questions"])
               and r["counts"]["extraction_words"] == len(r["extraction"].split()) for r in extraction)
    # each question's gold answer, as text and (multiple choice) its letter, beside the questions
    for row in list(extraction)[:8]:
        record = _record_for(recipe, row["id"], extraction)
        assert row["golds"] == [{"text": t.answer_text, "letter": t.answer if t.answer_type == "choice" else None} for t in record.turns]
    from pipelines.teachers.stage import build_stages
    from train_min.data import chats

    think = next(s for s in build_stages(recipe) if s.name == "think")
    row = next(r for r in _load(outcome.out_dir, "reasoning") if r["choices"])
    record_rows = [r for r in _load(outcome.out_dir, "reasoning") if r["record_id"] == row["record_id"]]
    assert row["prompt"] == think.prompts(_record_for(recipe, row["record_id"], extraction))[record_rows.index(row)].text
    assert chats(row, "reasoner")[0][0]["content"] == row["prompt"]  # what the reasoner trains on


def _record_for(recipe, record_id, extraction):
    """The source record of a published id, with its published extraction."""
    from pipelines.core.record import TeacherOutput

    record = next(r for i in range(N) if (r := make_record(i, recipe.sources[0].synthetic)).id == record_id)
    text = next(r["extraction"] for r in extraction if r["id"] == record_id)
    return record.add(extractions=(TeacherOutput(text, "stop"),))


def test_card_and_resolved_recipe_tell_the_truth(published):
    recipe, outcome = published
    card = (outcome.out_dir / "README.md").read_text()
    f = outcome.funnel.to_dict()
    assert f"| records in | {f['in']} |" in card
    assert f"| **kept** | **{f['kept']}** |" in card
    for reason, n in f["rejected_by_reason"].items():
        assert f"| rejected: `{reason}` | {n} |" in card
    assert "extraction/v1" in card and "license: cc0-1.0" in card
    assert read_recipe(outcome.out_dir / "recipe.yaml") == recipe
    assert json.loads((outcome.out_dir / "funnel.json").read_text()) == {"run_id": outcome.run_id, **f}


def test_a_rerun_replaces_the_output_whole(published, tmp_path):
    recipe = _recipe(tmp_path)
    run(recipe)
    smaller = _recipe(tmp_path, "sources.0.synthetic.num_records=5")
    outcome = run(smaller)
    assert outcome.funnel.records_in == 5
    assert len(_load(outcome.out_dir, "extraction")) + len(_load(outcome.out_dir, "rejected")) == 5
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no staging left behind


def test_teacher_failures_become_failed_rows_and_the_run_goes_on(tmp_path, monkeypatch):
    real_build = teachers._build

    class Flaky:
        def __init__(self, inner):
            self.inner, self.backend, self.model, self.revision = inner, inner.backend, inner.model, inner.revision

        def generate(self, requests):
            replies = self.inner.generate(requests)
            return [TeacherReply(error="HTTP 503: overloaded") if r.meta["stage"] == "think" and r.meta["record"].id[0] in "01234567"
                    else reply for r, reply in zip(requests, replies)]

        def close(self):
            pass

    monkeypatch.setattr(teachers, "_build", lambda cfg: Flaky(real_build(cfg)))
    outcome = run(_recipe(tmp_path, "teacher.oracle.error_rate=0"))
    f = outcome.funnel.to_dict()
    assert f["failed"] > 0 and f["failed_by_reason"] == {"think_teacher_error": f["failed"]}
    assert f["in"] == N == f["kept"] + f["rejected"] + f["failed"]
    rejected = _load(outcome.out_dir, "rejected")
    failed = [r for r in rejected if r["status"] == "failed"]
    assert len(failed) == f["failed"] and all(r["detail"] == "HTTP 503: overloaded" for r in failed)
    assert all(r["id"][0] in "01234567" for r in failed)
    assert all(r["extraction"] for r in failed)  # what the earlier stages wrote is kept


@pytest.mark.slow
def test_the_pipeline_runs_a_real_transformers_teacher(tmp_path, tiny_idefics3, tiny_llama):
    recipe = _recipe(
        tmp_path, "sources.0.synthetic.num_records=4", "teacher.backend=transformers", f"teacher.model={tiny_idefics3}",
        "teacher.batch_size=2", "stages.statements.sampling.max_tokens=8", "stages.focus.sampling.max_tokens=8",
        "stages.extraction.sampling.max_tokens=8", "stages.think.sampling.max_tokens=8", "stages.think.sampling.n=2",
        "stages.think.teacher.backend=transformers", f"stages.think.teacher.model={tiny_llama}",
        "output.min_kept=0",  # random tiny models: every record may be rejected
    )
    outcome = run(recipe)
    f = outcome.funnel.to_dict()
    assert f["in"] == 4 == f["kept"] + f["rejected"] + f["failed"]
    assert f["failed"] == 0 and f["teacher_requests"] >= 4 * 4 and f["completion_tokens"] > 0
    rows = list(_load(outcome.out_dir, "rejected")) if f["rejected"] else []
    rows += list(_load(outcome.out_dir, "extraction")) if f["kept"] else []
    assert len(rows) == 4 and all(r["extraction"] for r in rows)
    card = (outcome.out_dir / "README.md").read_text()
    assert str(tiny_llama) in card and str(tiny_idefics3) in card


def test_an_all_rejected_run_publishes_only_with_min_kept_0_and_then_only_what_it_has(tmp_path):
    from pipelines.commands.run import NotPublished

    args = ("sources.0.synthetic.num_records=3", "teacher.oracle.error_rate=1", "teacher.oracle.errors=[refusal]")
    with pytest.raises(NotPublished, match="0 records were kept, fewer than output.min_kept 1"):
        run(_recipe(tmp_path, *args))
    assert not (tmp_path / "out").exists()
    outcome = run(_recipe(tmp_path, *args, "output.min_kept=0"))
    assert outcome.funnel.kept == 0 and outcome.funnel.rejected == 3
    assert not (outcome.out_dir / "extraction").exists()
    card = (outcome.out_dir / "README.md").read_text()
    assert "config_name: rejected" in card and "config_name: extraction" not in card
    rows = _load(outcome.out_dir, "rejected")
    assert set(rows["reason"]) == {"refusal"}
    assert all(d.startswith("degeneration: extraction: ") for d in rows["detail"])
    with pytest.raises(ValueError, match="extraction"):
        _load(outcome.out_dir, "extraction")


def test_the_filter_funnel_chains_and_the_card_shows_it(published):
    recipe, outcome = published
    f = outcome.funnel.to_dict()
    steps = f["filters"]
    assert [s["filter"] for s in steps] == [x.name for x in recipe.filters]
    assert steps[0]["in"] == f["in"] - sum(n for r, n in f["rejected_by_reason"].items() if r in ("duplicate", "near_duplicate")) - f["failed"]
    for a, b in zip(steps, steps[1:]):
        assert b["in"] == a["passed"] and a["in"] == a["passed"] + a["rejected"]
    assert steps[-1]["passed"] == f["kept"]
    by_reason = Counter()
    for s in steps:
        by_reason.update(s["reasons"])
    assert dict(by_reason) == {r: n for r, n in f["rejected_by_reason"].items() if r not in ("duplicate", "near_duplicate")}
    card = (outcome.out_dir / "README.md").read_text()
    for s in steps:
        assert f"| `{s['filter']}` | {s['in']} | {s['rejected']} | {s['passed']} |" in card
    rows = _load(outcome.out_dir, "rejected")
    for row in rows:  # the detail names the filter, and every verdict's score is published
        assert row["detail"].split(":", 1)[0] in {s["filter"] for s in steps}
        assert list(row["scores"]) == [s["filter"] for s in steps]  # a float per filter, null where it did not run
        assert row["scores"][row["detail"].split(":", 1)[0]] is not None
