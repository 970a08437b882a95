"""The miniature experiment (train_min/experiment/): the same command as on the GPU, on
a few records, tiny models and two steps per model, so that its code cannot rot; and the
parts its table rests on (the bundle, the redraw, the captions, the fact coverage)."""

import json
import os
import re
from importlib import resources

import pyarrow.parquet as pq
import pytest

from pipelines.config import build
from pipelines.config.source_config import SourceConfig
from pipelines.sources.synthetic import make_record
from pipelines.teachers.oracle import caption
from train_min.experiment import ARMS, fact_coverage, false_sentences, load_experiment, main

RECIPE = str(resources.files("recipes") / "train" / "miniature.yaml")
TINY_LM = "{hidden_size:32,intermediate_size:64,num_hidden_layers:1,num_attention_heads:1,num_key_value_heads:1,head_dim:32}"


def tiny(out) -> list[str]:
    return [f"out={out}", "data.overrides=[sources.0.synthetic.num_records=40,sources.0.synthetic.image_size=64]",
            "seeds=[0,1]", "jobs=2", "device=cpu", "vocab_size=400", "progress=false",
            "perception_model.image_size=64", "perception_model.patch_size=16", "perception_model.scale_factor=2",
            "perception_model.vision={hidden_size:32,intermediate_size:64,num_hidden_layers:1,num_attention_heads:1}",
            f"perception_model.text={TINY_LM}", f"reasoner_model={TINY_LM}",
            *(f"{m}.{k}" for m in ("perception", "reasoner") for k in ("steps=2", "batch_size=4", "eval_every=0")),
            "eval.heldout.0.synthetic.num_records=4", "eval.heldout.0.synthetic.image_size=64", "eval.extraction_tokens=8",
            "eval.thinking_budget=8", "eval.answer_tokens=4", "eval.direct_tokens=4"]


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    out = tmp_path_factory.mktemp("miniature")
    main([RECIPE, *tiny(out)])
    return out


def test_every_arm_and_seed_is_trained_evaluated_and_reported(experiment):
    report = json.loads((experiment / "results.json").read_text())
    assert list(report["arms"]) == list(ARMS)
    items = report["arms"]["direct"]["items"]
    assert items >= 4  # 4 held-out scenes, 1-3 questions each
    for arm, a in report["arms"].items():
        assert len(a["accuracy"]["all"]["values"]) == 2  # one per seed
        assert all(0.0 <= v <= 1.0 for v in a["accuracy"]["all"]["values"])
        assert set(report["columns"]) <= set(a["accuracy"])
        assert (a["fact_coverage"] is None) == (arm == "direct") == (a["false_sentences"] is None)
        assert arm == "direct" or all(0.0 <= v <= 1.0 for v in a["false_sentences"]["values"])
    rows = [json.loads(line) for line in open(experiment / "predictions.jsonl")]
    assert len(rows) == len(ARMS) * 2 * items
    assert {(r["arm"], r["seed"]) for r in rows} == {(a, s) for a in ARMS for s in (0, 1)}
    assert all(r["stage1"] is not None for r in rows if r["arm"] != "direct")
    table = (experiment / "results.md").read_text()
    assert all(f"| {arm} |" in table for arm in ARMS) and "facts stated" in table and "false sentences" in table
    # the resolved config is written and loads back as the same experiment
    assert load_experiment(str(experiment / "config.yaml")).seeds == [0, 1]
    # one shape for every perception-side model; the two-stage arms add a reasoner
    sizes = report["parameters"]
    assert sizes["direct"] == sizes["caption_think"].split(" + ")[0] == sizes["extract_think"].split(" + ")[0]


def test_the_bundle_holds_filtered_unfiltered_caption_and_direct_sets(experiment):
    bundle = experiment / "bundle"
    manifest = json.loads((bundle / "manifest.json").read_text())
    read = {name: pq.read_table(bundle / f"{name}.parquet").to_pylist() for name in manifest["rows"]}
    filtered = {r["id"] for r in read["extraction_filtered"]}
    unfiltered = {r["id"] for r in read["extraction_unfiltered"]}
    assert filtered < unfiltered  # 20% injected mistakes: the filters drop some; without filters all stay
    assert manifest["records"]["unfiltered"] == 40  # every record the teacher answered
    # the reasoners' data: one trace per question of the kept records
    assert {r["record_id"] for r in read["reasoning_filtered"]} <= filtered
    assert len(read["reasoning_unfiltered"]) > len(read["reasoning_filtered"])
    source = build(SourceConfig, manifest["source"])
    for row in read["caption"][:5]:  # the scene's truth, not the questions' sentences
        record = make_record(row["scene"], source.synthetic, source.name, source.license)
        assert row["extraction"] == caption(record) and row["prompt"] == "Describe the image."
    direct = read["direct"]
    assert len(direct) == len(read["reasoning_filtered"])  # one row per question of the same records
    record = make_record(direct[0]["scene"], source.synthetic, source.name, source.license)
    assert direct[0]["prompt"].startswith(record.turns[0].question) and direct[0]["extraction"] == f"Answer: {record.turns[0].answer}"
    assert "image" not in pq.read_schema(bundle / "caption.parquet").names  # images are drawn again, not carried
    assert manifest["captions_failed"] == 0 and manifest["captions_failed_by_reason"] == {}


def test_scenes_whose_caption_fails_are_left_out_and_counted_by_reason(monkeypatch):
    import pipelines.teachers as teachers
    from pipelines.config.recipe import TeacherConfig
    from pipelines.config.source_config import SyntheticSource
    from pipelines.teachers.base import TeacherReply
    from train_min.experiment.bundle import _captions

    real = teachers.load_teacher

    class EveryThirdFails:  # the real oracle, with a teacher error on every third request
        def __init__(self, cfg):
            self.inner = real(cfg)

        def generate(self, requests):
            replies = self.inner.generate(requests)
            return [TeacherReply(error="HTTP 500: overloaded") if i % 3 == 0 else r for i, r in enumerate(replies)]

        def close(self):
            self.inner.close()

    monkeypatch.setattr(teachers, "load_teacher", EveryThirdFails)
    records = [make_record(i, SyntheticSource(num_records=9, image_size=64)) for i in range(9)]
    captions, failed = _captions(records, TeacherConfig(backend="oracle"), "Describe the image.")
    assert set(captions) == {r.id for i, r in enumerate(records) if i % 3} and failed == {"HTTP 500: overloaded": 3}
    assert all(captions[r.id] == caption(r) for r in records if r.id in captions)


def test_the_scenes_are_drawn_again_identically_and_load_as_datasets(experiment):
    from train_min.data import load_rows

    drawn = json.loads((experiment / "data" / "materialized.json").read_text())
    assert drawn["ids_differ"] == 0
    rows = load_rows(str(experiment / "data" / "caption"), "extraction")
    assert rows[0]["image"]["bytes"][:8] == b"\x89PNG\r\n\x1a\n"


def test_a_rerun_skips_what_is_finished(experiment, capsys):
    final = experiment / "runs" / "seed0" / "direct" / "final" / "model.safetensors"
    before = os.stat(final).st_mtime_ns
    main([RECIPE, *tiny(experiment)])
    assert os.stat(final).st_mtime_ns == before
    out = capsys.readouterr().out
    assert "train 0 models and evaluate 0 arm x seed" in out and "from the evaluation folders already there" in out


def test_a_redrawn_scene_with_other_questions_is_refused(experiment, tmp_path):
    import shutil

    import pyarrow as pa

    from train_min.experiment.bundle import materialize

    bundle = tmp_path / "bundle"
    shutil.copytree(experiment / "bundle", bundle)
    table = pq.read_table(bundle / "direct.parquet")
    keys = ["0" * 16] + table["turns_key"].to_pylist()[1:]
    pq.write_table(table.set_column(table.schema.get_field_index("turns_key"), "turns_key", pa.array(keys)), bundle / "direct.parquet")
    with pytest.raises(ValueError, match="other questions or answers"):
        materialize(bundle, tmp_path / "data")


def test_fact_coverage_credits_true_statements_only_and_false_sentences_counts_the_false_ones():
    from pipelines.config.recipe import OracleOptions
    from pipelines.config.source_config import SyntheticSource
    from pipelines.teachers.oracle import _extraction

    config = SyntheticSource(num_records=60, image_size=64)
    covered = {"extraction": [], "caption": [], "wrong": []}
    truth, texts = {}, {"extraction": [], "caption": [], "miscounted": []}
    for i in range(60):
        record = make_record(i, config)
        extraction = _extraction(record, None, 0, OracleOptions())[0]
        for t in record.turns:
            row = {"meta": t.meta, "gold": t.answer, "choices": list(t.choices), "question": t.question}
            covered["extraction"].append(fact_coverage({**row, "stage1": extraction}))
            covered["caption"].append(fact_coverage({**row, "stage1": caption(record)}))
            covered["wrong"].append(fact_coverage({**row, "stage1": "The image shows something else entirely."}))
        truth[record.id] = record
        texts["extraction"].append({"record_id": record.id, "stage1": extraction})
        texts["caption"].append({"record_id": record.id, "stage1": caption(record)})
        # every number in the text one more: a sentence that states a number is now false
        miscounted = re.sub(r"\d+", lambda m: str(int(m.group()) + 1), extraction)
        texts["miscounted"].append({"record_id": record.id, "stage1": miscounted})
    assert all(covered["extraction"])  # the oracle's extraction states every question's fact
    assert 0 < sum(covered["caption"]) < len(covered["caption"])  # a generic caption states some
    assert not any(covered["wrong"])
    assert false_sentences(texts["extraction"], truth) == false_sentences(texts["caption"], truth) == 0.0
    assert 0.2 < false_sentences(texts["miscounted"], truth) < 1.0  # scene sentences without numbers stay true
    assert false_sentences(texts["caption"], {}) is None  # no known truth: not measured


def test_the_schedule_evaluates_as_soon_as_models_exist_drops_what_failed_and_stops_at_the_time_limit(monkeypatch):
    import train_min.experiment.jobs as jobs

    done = []
    def train(job):
        if job["out"] == "bad":
            raise RuntimeError("out of memory")
        done.append(("train", job["out"]))
    monkeypatch.setattr(jobs, "_train_job", train)
    monkeypatch.setattr(jobs, "_eval_job", lambda job: done.append(("eval", job["out"])))
    train_jobs = [{"out": "p0"}, {"out": "r0"}, {"out": "bad"}, {"out": "p1"}]
    evals = [({"out": "e0"}, {"p0", "r0"}), ({"out": "e-bad"}, {"bad"}), ({"out": "e1"}, {"p1"})]
    failed, left = jobs.schedule(train_jobs, evals, workers=1)
    # e0 runs as soon as p0 and r0 exist, before the rest of the training
    assert done == [("train", "p0"), ("train", "r0"), ("eval", "e0"), ("train", "p1"), ("eval", "e1")]
    assert left == 0 and len(failed) == 2
    assert failed[0].startswith("train bad: RuntimeError: out of memory") and failed[1] == "eval e-bad: needs a model that failed"
    done.clear()
    clock = [0.0]
    monkeypatch.setattr(jobs.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(jobs, "_train_job", lambda job: (done.append(("train", job["out"])), clock.__setitem__(0, 99.0)))
    failed, left = jobs.schedule(train_jobs[:2], evals[:1], workers=1, time_limit=10)
    assert done == [("train", "p0")] and failed == [] and left == 2  # r0 and e0 wait for the next run
