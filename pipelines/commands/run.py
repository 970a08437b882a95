"""Run a recipe: build the pipeline, run it, and publish the result locally.

The pipeline writes into a staging folder beside the output; only when it finished, with
few enough failed records and enough kept ones, are the card, the resolved recipe and the
funnel added and the folder swapped into place, so a run that dies or fails leaves the
previous output intact (output.py says what an output may be). The output may be a local
folder or any fsspec URL (s3://bucket/data, gs://...): workers write the shards there themselves.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path

import apache_beam as beam
import fsspec
from apache_beam.options.pipeline_options import PipelineOptions

from pipelines.beam.pipeline import build_pipeline
from pipelines.commands import reviews
from pipelines.commands.preflight import preflight
from pipelines.config.recipe import Recipe, dump_recipe, read_recipe
from pipelines.observe.funnel import Funnel, read_counters
from pipelines.publishing.card import LICENSE_FILE, license_file, render_card
from pipelines.publishing.output import check_output, is_publish, output_location
from pipelines.publishing.replace import Replacement
from pipelines.publishing.report import ASSETS, chart_paths, first_rows, write_charts, write_report
from pipelines.publishing.rows import CONFIGS, prompt_files
from pipelines.teachers.stage import active_stages


class NotPublished(RuntimeError):
    """The run finished, but its result must not replace the output (see `publish_refusal`);
    `funnel` has its counts, `example` one failed row's reason, detail and origin."""

    def __init__(self, why: str, funnel: Funnel, example: dict | None = None):
        super().__init__(why)
        self.why, self.funnel, self.example = why, funnel, example


@dataclass
class RunOutcome:
    out_dir: Path | str  # a Path for a local output, else its URL
    funnel: Funnel
    run_id: str

    def dataset(self, config: str = "extraction", split: str | None = None):
        """One config of the published dataset ("extraction", "reasoning", "rejected"), loaded
        with `datasets` (images as `Image` features): a DatasetDict of its splits (`train`, and
        `test` where the run held records out), or the one `split` named. A config or split
        with no rows is not published: ValueError then, naming what is."""
        import datasets

        if config not in CONFIGS:
            raise ValueError(f"config must be one of {CONFIGS}, got {config!r}")
        if not self.funnel.shards.get(config):
            raise ValueError(f"the {config} config has no rows in this run; published: "
                             f"{', '.join(c for c in CONFIGS if self.funnel.shards.get(c))}")
        splits = self.funnel.split_rows(config)
        if split is not None and split not in splits:
            raise ValueError(f"the {config} config has no {split!r} split in this run; it has: {', '.join(splits)}")
        return datasets.load_dataset(str(self.out_dir), config, split=split)


def pipeline_options(recipe: Recipe) -> PipelineOptions:
    return PipelineOptions(list(recipe.runner.options), runner=recipe.runner.runner)


def stage_prices(recipe: Recipe) -> dict:
    """Each active stage's teacher price (None where the recipe gives none)."""
    return {name: recipe.stage_teacher(name).price for name in active_stages(recipe)}


def publish_refusal(funnel: Funnel, output) -> str | None:
    """Why a finished run must not replace the output, or None: too many records failed
    (a teacher that was down, a wrong endpoint) or too few were kept."""
    if funnel.records_in and funnel.failed / funnel.records_in > output.max_failed_share:
        return (f"{funnel.failed} of {funnel.records_in} records failed, more than output.max_failed_share "
                f"{output.max_failed_share:g}")
    if funnel.kept < output.min_kept:
        return f"{funnel.kept} records were kept, fewer than output.min_kept {output.min_kept}"
    return None


def run(recipe: Recipe | str | Path, overrides: tuple[str, ...] = (), test_pipeline: beam.Pipeline | None = None) -> RunOutcome:
    """Run the recipe and publish its dataset at `output.dir`. Raises OutputRefused or
    PreflightError (before any work) for an output that is not ours to replace or a teacher
    that cannot answer, TeacherDown when the teacher failed every request of
    `teacher.fail_fast_batches` batches in a row (the run stops), NotPublished when the run
    finished but must not replace the output; in every case the output is left as it was."""
    if not isinstance(recipe, Recipe):
        recipe = read_recipe(recipe, overrides)
    out = output_location(recipe.output.dir)
    fs, _ = fsspec.core.url_to_fs(out)
    check_output(fs, out)
    fs.makedirs(out.rsplit("/", 1)[0], exist_ok=True)
    with Replacement(fs, out, lambda folder: is_publish(fs, folder)) as replacing:
        run_id = uuid.uuid4().hex[:8]
        funnel = _run_into(replacing.staging, recipe, run_id, fs, test_pipeline, out)
        replacing.commit()
    return RunOutcome(Path(out) if "://" not in out else out, funnel, run_id)


def _run_into(staging: str, recipe: Recipe, run_id: str, fs, test_pipeline, out: str) -> Funnel:
    """Run the pipeline into `staging` and add the card, report and funnel; the funnel."""
    p = test_pipeline or beam.Pipeline(options=pipeline_options(recipe))
    build_pipeline(p, recipe, staging, run_id)  # the sources and templates checked first: they cost nothing to check
    preflight(recipe, list(active_stages(recipe)))  # a teacher that cannot answer stops the run before it reads a record
    started = time.perf_counter()
    result = p.run()
    result.wait_until_finish()
    seconds = round(time.perf_counter() - started, 3)
    funnel = Funnel.from_counters(read_counters(result), [f.name for f in recipe.filters], prices=stage_prices(recipe),
                                  run_seconds=seconds, run_id=run_id)
    if not funnel.conserved:
        raise RuntimeError(f"records were lost: {funnel}")
    refusal = publish_refusal(funnel, recipe.output)
    if refusal:
        ended = first_rows(staging, "rejected", 100, ["status", "reason", "detail", "origin"])
        example = next((r for r in ended if r["status"] == "failed"), None)
        raise NotPublished(refusal, funnel, example)
    funnel = replace(funnel, shards={c: n for c in CONFIGS if (n := len(fs.glob(f"{staging}/{c}/*-{run_id}-*.parquet")))})
    publishing = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:  # the card and report, made here, then put beside the data
        meta = Path(tmp)
        (meta / "recipe.yaml").write_text(dump_recipe(recipe))
        for name, text in prompt_files(recipe).items():
            (meta / name).parent.mkdir(parents=True, exist_ok=True)
            (meta / name).write_text(text)
        charts = write_charts(meta, funnel)
        examples = card_examples(staging)
        audited = "://" not in out and reviews.carry(out, staging)  # reviewers' labels stay with the dataset
        (meta / "README.md").write_text(render_card(recipe, funnel, charts, examples, dataset_ref=out,
                                                    audit=reviews.audit(staging) if audited else None))
        licenses = license_file(recipe, funnel)
        if licenses:
            (meta / LICENSE_FILE).write_text(licenses)
        write_report(meta, staging, recipe.name, funnel, charts)
        funnel = replace(funnel, publish_seconds=round(time.perf_counter() - publishing, 3))  # charts, card, report
        (meta / "funnel.json").write_text(json.dumps(funnel.to_dict(), indent=2) + "\n")
        for f in sorted(meta.rglob("*")):
            if f.is_file():
                target = f"{staging}/{f.relative_to(meta).as_posix()}"
                fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
                fs.put_file(str(f), target)
    return funnel


def card_examples(folder) -> list[dict]:
    """The card's three example rows."""
    return first_rows(folder, "extraction", 3, ["id", "prompt", "extraction", "questions"])


def refresh_card(out: str | Path) -> None:
    """Rewrite a local publish's card from what it holds (recipe, funnel, charts, rows) with the
    audit of its reviewers' labels: after `review`, `calibrate` calls this."""
    out = Path(out).resolve()
    recipe = read_recipe(out / "recipe.yaml")
    funnel = Funnel.from_dict(json.loads((out / "funnel.json").read_text()))
    charts = chart_paths(p.stem for p in (out / ASSETS).glob("*.png"))
    examples = card_examples(out)
    text = render_card(recipe, funnel, charts, examples, dataset_ref=str(out), audit=reviews.audit(out))
    tmp = out / ".README.md.tmp"
    tmp.write_text(text)
    tmp.replace(out / "README.md")
