"""The miniature experiment's data: made once by the real pipeline, carried as text, drawn
again wherever the models train.

`make_bundle` (needs the pipeline, i.e. Beam) runs a synthetic-source recipe twice, with
its filters and with none (`filters=[]`: every record the teacher answered is kept,
mistakes included; the two runs share the reply cache, so the teacher writes once), and
writes a bundle of small parquet tables, one per training set:

    extraction_filtered / extraction_unfiltered  image + focus prompt -> extraction
    reasoning_filtered / reasoning_unfiltered    the reasoner's prompt -> reasoning trace
    caption                                      image + caption prompt -> a generic caption
                                                 (written by `caption_teacher`, asked at stage
                                                 `caption`; the oracle writes it from the scene)
    direct                                       image + question (+ options) -> "Answer: X"

Caption and direct rows are made from the filtered set's records, so that these arms see
the same images as Extract+Think. Image rows carry the scene number and the record id, not
the image: `materialize` draws the scenes again (a process pool), checks that each redrawn
record has the same id (the id hashes the image bytes and the questions) and writes
train_min's data folders (one config each, loadable with `datasets.load_dataset`). The
bundle of 20,000 records is a few MB; the images would be ~60 MB.
"""

from __future__ import annotations

import hashlib
import json
from functools import partial
from pathlib import Path

IMAGE_SETS = ("extraction_filtered", "extraction_unfiltered", "caption", "direct")
TEXT_SETS = ("reasoning_filtered", "reasoning_unfiltered")


def _turns_key(record) -> str:
    return hashlib.sha256(json.dumps([[t.question, t.answer] for t in record.turns]).encode()).hexdigest()[:16]


def _write(table_rows: list[dict], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(table_rows), path, compression="zstd")


def _captions(records: list, teacher_cfg, prompt: str, batch: int = 256) -> tuple[dict[str, str], dict[str, int]]:
    """record id -> caption, from any teacher of the teacher layer (stage `caption`); and
    the count of records without one, by reason (the teacher's error, or an empty reply)."""
    from collections import Counter

    from pipelines.teachers import load_teacher
    from pipelines.teachers.base import ChatRequest, Sampling, user_message

    teacher, out, failed = load_teacher(teacher_cfg), {}, Counter()
    try:
        for start in range(0, len(records), batch):
            chunk = records[start : start + batch]
            requests = [ChatRequest(user_message(prompt, r.images), Sampling(temperature=0.0, max_tokens=256),
                                    meta={"stage": "caption", "record": r}) for r in chunk]
            for record, reply in zip(chunk, teacher.generate(requests)):
                if reply.error is None and reply.outputs and reply.outputs[0].text.strip():
                    out[record.id] = reply.outputs[0].text.strip()
                else:
                    failed[str(reply.error)[:200] if reply.error is not None else "empty reply"] += 1
    finally:
        teacher.close()
    return out, dict(failed)


def make_bundle(recipe: str, overrides: list[str], out: Path, caption_teacher, caption_template: str, direct_template: str) -> dict:
    """Run the recipe filtered and unfiltered under `out/runs`, write the bundle to
    `out/bundle`; returns its manifest."""
    from pipelines.commands.run import run
    from pipelines.config import to_plain
    from pipelines.config.recipe import read_recipe
    from pipelines.sources.synthetic import make_record, scene_index, sketch_record
    from pipelines.stages.prompting import render
    from train_min.data import direct_prompt, load_rows

    caption_prompt = render(caption_template)

    runs = {}
    for name, extra in (("filtered", []), ("unfiltered", ["filters=[]", "output.min_kept=0"])):
        resolved = read_recipe(recipe, [*overrides, *extra, f"output.dir={out / 'runs' / name}"])
        if len(resolved.sources) != 1 or resolved.sources[0].kind != "synthetic":
            raise ValueError("the experiment's data recipe needs exactly one synthetic source (it draws the scenes again)")
        source = resolved.sources[0]
        runs[name] = str(run(resolved).out_dir)
    bundle, tables = out / "bundle", {}
    for name, data in runs.items():
        rows = load_rows(data, "extraction").select_columns(["id", "prompt", "extraction", "origin"]).to_list()
        tables[f"extraction_{name}"] = [{"id": r["id"], "record_id": r["id"], "scene": scene_index(r["origin"]),
                                         "prompt": r["prompt"], "extraction": r["extraction"]} for r in rows]
        tables[f"reasoning_{name}"] = load_rows(data, "reasoning").select_columns(
            ["id", "record_id", "prompt", "extraction", "question", "choices", "reasoning"]).to_list()
    records = [make_record(r["scene"], source.synthetic, source.name, source.license) for r in tables["extraction_filtered"]]
    for record, row in zip(records, tables["extraction_filtered"]):
        if record.id != row["id"]:
            raise ValueError(f"scene {row['scene']} draws as {record.id}, published as {row['id']}: the source changed")
    captions, failed = _captions(records, caption_teacher, caption_prompt)
    if failed:
        from train_min.experiment.jobs import log

        log(f"   {sum(failed.values())} of {len(records)} scenes have no caption (left out of the caption set): {failed}")
    keys = {row["id"]: _turns_key(sketch_record(row["scene"], source.synthetic)) for row in tables["extraction_unfiltered"]}
    tables["caption"] = [{"id": r.id, "record_id": r.id, "scene": row["scene"], "prompt": caption_prompt, "extraction": captions[r.id]}
                         for r, row in zip(records, tables["extraction_filtered"]) if r.id in captions]
    tables["direct"] = [{"id": f"{r.id}-{i}", "record_id": r.id, "scene": row["scene"],
                         "prompt": direct_prompt(t.question, t.choices, direct_template), "extraction": f"Answer: {t.answer}"}
                        for r, row in zip(records, tables["extraction_filtered"]) for i, t in enumerate(r.turns)]
    for rows in (tables[n] for n in IMAGE_SETS):
        for row in rows:
            row["turns_key"] = keys[row["record_id"]]
    for name, rows in tables.items():
        _write(rows, bundle / f"{name}.parquet")
    manifest = {"recipe": recipe, "overrides": list(overrides), "source": to_plain(source), "runs": runs,
                "rows": {name: len(rows) for name, rows in tables.items()},
                "records": {"filtered": len(tables["extraction_filtered"]), "unfiltered": len(tables["extraction_unfiltered"])},
                "captions_failed": len(records) - len(captions), "captions_failed_by_reason": failed}
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


def bundle_texts(bundle: Path):
    """Every text a model reads or writes in the bundle (for the tokenizers)."""
    import pyarrow.parquet as pq

    for name in (*IMAGE_SETS, *TEXT_SETS):
        table = pq.read_table(bundle / f"{name}.parquet")
        for column in ("prompt", "extraction", "reasoning"):
            if column in table.column_names:
                yield from table[column].to_pylist()


def _draw(config, scene: int) -> tuple[int, str, str, bytes]:
    from pipelines.sources.synthetic import make_record

    record = make_record(scene, config.synthetic, config.name, config.license)
    return scene, record.id, _turns_key(record), record.images[0].bytes


def materialize(bundle: Path, out: Path, workers: int = 1) -> dict:
    """The bundle as train_min data folders under `out` (one per set), its scenes drawn
    again. Returns {"scenes", "ids_differ", "sets": {name: rows}}; a scene whose questions
    or answers come out differently is an error (the labels would not match the image)."""
    import multiprocessing

    import pyarrow.parquet as pq

    manifest = json.loads((bundle / "manifest.json").read_text())
    tables = {name: pq.read_table(bundle / f"{name}.parquet").to_pylist() for name in (*IMAGE_SETS, *TEXT_SETS)}
    scenes = sorted({row["scene"] for name in IMAGE_SETS for row in tables[name]})
    from pipelines.config import build
    from pipelines.config.source_config import SourceConfig

    draw = partial(_draw, build(SourceConfig, manifest["source"]))  # the config built once, not per scene
    if workers > 1:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            drawn = {s: d for s, *d in pool.imap_unordered(draw, scenes, chunksize=64)}
    else:
        drawn = {s: d for s, *d in map(draw, scenes)}
    differ = set()
    for name in IMAGE_SETS:
        for row in tables[name]:
            record_id, key, image = drawn[row["scene"]]
            if key != row["turns_key"]:
                raise ValueError(f"scene {row['scene']} draws with other questions or answers than it was published with")
            if record_id != row["record_id"]:
                differ.add(row["scene"])  # same questions, other image bytes (another Pillow or zlib)
            row["image"] = {"bytes": image, "path": None}
    for name, rows in tables.items():
        config = "extraction" if name in IMAGE_SETS else "reasoning"
        _write(rows, out / name / config / "train-00000-of-00001.parquet")
        (out / name / "README.md").write_text(
            f"---\nconfigs:\n- config_name: {config}\n  data_files:\n  - split: train\n    path: {config}/*.parquet\n---\n")
    summary = {"scenes": len(scenes), "ids_differ": len(differ), "sets": {name: len(rows) for name, rows in tables.items()}}
    (out / "materialized.json").write_text(json.dumps(summary, indent=2))
    return summary
