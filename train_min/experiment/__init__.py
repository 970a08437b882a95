"""The method in miniature: Extract+Think against its baselines, filtered against
unfiltered data, trained from scratch with several seeds, evaluated on held-out scenes.

    python -m train_min.experiment [recipes/train/miniature.yaml] [key=value ...]

1. data (needs the pipeline): the recipe's synthetic records through the real pipeline,
   with its filters and without (train_min/experiment/bundle.py), plus captions and direct-answer rows
   from the same records, as a small text bundle (`until=data` stops there: the bundle is
   what travels to a GPU machine, where the scenes are drawn again);
2. data folders and models: the bundle's sets as train_min data; byte-level BPE tokenizers
   trained on its text; per seed an Idefics3 perception model and a Llama reasoner with
   random weights. Every perception-side model (extraction, caption, direct) has the same
   shape, steps and batch; so do the two reasoners;
3. training, `jobs` processes at a time (one GPU holds several small models):
   - extract_think:            perception on extraction_filtered, reasoner on reasoning_filtered
   - extract_think_unfiltered: the same on the unfiltered sets
   - caption_think:            perception on caption; extract_think's reasoner
   - direct:                   one model on direct (image + question -> answer)
4. evaluation of every arm and seed with train_min.evaluate (two-stage for the first three),
   and the perception models' fact coverage: the share of held-out questions whose fact,
   stated with its true answer, the model's extraction (or caption) supports (the
   statement_coverage measure against the scene's ground truth), and the share of their
   sentences that the scene contradicts (pipelines.sources.scenes.truth: a wrong count, value, time);
5. report: accuracy mean +- sd over seeds per arm and per family, written with the resolved
   config and every prediction to `out`.

A rerun skips what is finished: the bundle, the data folders, models whose `final` exists,
evaluations whose results exist.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipelines.config import ConfigError, build, load_yaml, to_plain
from pipelines.config.recipe import TeacherConfig
from pipelines.support.lexical import SUPPORTED
from train_min.evaluate import EvalConfig
from train_min.experiment.demo import DataStep, VLMShape, cli_args
from train_min.experiment.jobs import log, schedule

ARMS = ("extract_think", "extract_think_unfiltered", "caption_think", "direct")
# arm -> (evaluated system, perception-side model, reasoner); models are (train_min task, data set)
SYSTEM = {"extract_think": "extract_think", "extract_think_unfiltered": "extract_think", "caption_think": "caption_think",
          "direct": "direct"}
MODELS = {"extract_think": ("extraction_filtered", "reasoning_filtered"),
          "extract_think_unfiltered": ("extraction_unfiltered", "reasoning_unfiltered"),
          "caption_think": ("caption", "reasoning_filtered"), "direct": ("direct", None)}


@dataclass
class ExperimentConfig:
    eval: dict[str, Any]  # an EvalConfig without models and systems: filled in per arm
    out: str = "out/miniature"
    data: DataStep = field(default_factory=DataStep)
    caption_teacher: TeacherConfig = field(default_factory=TeacherConfig)  # writes the Caption+Think targets
    arms: list[Literal["extract_think", "extract_think_unfiltered", "caption_think", "direct"]] = field(default_factory=lambda: list(ARMS))
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    device: str = "auto"  # auto | cpu | cuda: training and evaluation
    jobs: int = 1  # training / evaluation processes at a time
    time_limit: float = 0  # seconds after which no training or evaluation starts (time-limited machines); 0: none
    until: Literal["data", "models", "report"] = "report"  # the last step to run
    vocab_size: int = 2048
    perception_model: VLMShape = field(default_factory=VLMShape)
    reasoner_model: dict[str, Any] = field(default_factory=dict)  # LlamaConfig fields
    perception: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields of every perception-side model
    reasoner: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields of both reasoners
    progress: bool = True

    def __post_init__(self):
        if not self.arms or not self.seeds:
            raise ConfigError("arms and seeds: name at least one each")


def load_experiment(path: str, overrides: list[str] = ()) -> ExperimentConfig:
    return load_yaml(ExperimentConfig, path, overrides)


def _device(cfg: ExperimentConfig) -> str:
    if cfg.device != "auto":
        return cfg.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def build_models(cfg: ExperimentConfig, bundle: Path, models: Path) -> None:
    """Tokenizers (once) and the initial models of every seed."""
    from train_min.experiment.bundle import bundle_texts
    from train_min.experiment.scratch import IDEFICS3_SPECIALS, LM_SPECIALS, build_idefics3, build_llama, train_tokenizer

    todo = [s for s in cfg.seeds if not (models / f"seed{s}" / "reasoner" / "config.json").exists()]
    if not todo:
        return
    texts = list(bundle_texts(bundle))
    vlm_tok, lm_tok = train_tokenizer(texts, IDEFICS3_SPECIALS, cfg.vocab_size), train_tokenizer(texts, LM_SPECIALS, cfg.vocab_size)
    shape = cfg.perception_model
    for seed in todo:
        build_idefics3(models / f"seed{seed}" / "perception", vlm_tok, shape.image_size, shape.patch_size, shape.scale_factor,
                       text=shape.text, vision=shape.vision, seed=seed)
        build_llama(models / f"seed{seed}" / "reasoner", lm_tok, text=cfg.reasoner_model, seed=seed)


def _pending(cfg: ExperimentConfig, out: Path) -> list[tuple[str, int]]:
    """(arm, seed) pairs whose evaluation has no results yet."""
    return [(arm, seed) for seed in cfg.seeds for arm in cfg.arms if not (out / "eval" / arm / f"seed{seed}" / "results.json").exists()]


def train_jobs(cfg: ExperimentConfig, out: Path, device: str) -> list[dict]:
    """The models that pending evaluations need and that are not trained yet."""
    needed = sorted({(seed, m) for arm, seed in _pending(cfg, out) for m in MODELS[arm] if m},
                    key=lambda sm: (sm[0], sm[1].startswith("reasoning"), sm[1]))
    jobs = []
    for seed, data in needed:
        task = "reasoner" if data.startswith("reasoning") else "perception"
        run = out / "runs" / f"seed{seed}" / data
        if (run / "final" / "train_config.json").exists():
            continue
        # the machine's CPUs shared by the jobs running at once: each job's loader workers their share
        workers = max(1, (os.cpu_count() or 2) // max(1, cfg.jobs) - 1)
        jobs.append({"workers": workers, **getattr(cfg, task), "task": task, "model": str(out / "models" / f"seed{seed}" / task),
                     "data": str(out / "data" / data), "out": str(run), "seed": seed, "device": device,
                     "progress": cfg.progress and cfg.jobs <= 1, "report_to": "none"})
    return jobs


def eval_jobs(cfg: ExperimentConfig, out: Path, device: str) -> list[tuple[dict, set[str]]]:
    from pipelines.config.recipe import TransformersOptions

    dtype = "bfloat16" if device == "cuda" else "float32"
    jobs = []
    for arm, seed in _pending(cfg, out):
        perception, reasoner = MODELS[arm]
        def teacher(data, seed=seed):
            return to_plain(TeacherConfig(backend="transformers", model=str(out / "runs" / f"seed{seed}" / data / "final"),
                                          transformers=TransformersOptions(device=device, dtype=dtype), batch_size=64))
        job = {**cfg.eval, "systems": [SYSTEM[arm]], "perception": teacher(perception),
               "reasoner": teacher(reasoner or perception), "out": str(out / "eval" / arm / f"seed{seed}"),
               "progress": cfg.progress and cfg.jobs <= 1}
        jobs.append((job, {str(out / "runs" / f"seed{seed}" / m) for m in MODELS[arm] if m}))
    return jobs


def fact_coverage(row: dict, min_score: float = SUPPORTED) -> bool:
    """Does a prediction row's stage-1 text state its question's fact with the true answer?"""
    from pipelines.sources.scenes import FAMILIES
    from pipelines.support.lexical import support

    meta = row["meta"]
    statement = FAMILIES[meta["family"]].statement(meta["template"], meta["args"], row["gold"], tuple(row["choices"]))
    return support(statement, row.get("stage1") or "", "lexical", row["question"]) >= min_score


def eval_settings(cfg: ExperimentConfig) -> EvalConfig:
    """The experiment's evaluation settings (held-out sources, prompts), models left open."""
    open_model = {"backend": "transformers", "model": "(each job names its trained model)"}
    return build(EvalConfig, {**cfg.eval, "perception": open_model, "reasoner": open_model})


def heldout_truth(cfg: ExperimentConfig) -> dict:
    """The held-out records whose scene truth is known (synthetic), by id."""
    from train_min.evaluate import load_heldout

    return {r.id: r for r in load_heldout(eval_settings(cfg))[0] if (r.facts or {}).get("family")}


def false_sentences(rows: list[dict], truth: dict) -> float | None:
    """The share of the stage-1 texts' sentences that their scene contradicts (a wrong
    count, value, time, colour; pipelines.sources.scenes.truth), each scene's text counted once; None where
    no scene's truth is known."""
    from pipelines.sources.scenes.truth import stated_errors
    from pipelines.support.text import sentences

    texts = {r["record_id"]: r.get("stage1") or "" for r in rows if r["record_id"] in truth}
    said = sum(len(sentences(t)) for t in texts.values())
    return sum(len(stated_errors(t, truth[k])) for k, t in texts.items()) / said if said else None


def _mean_sd(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0, "values": values}


def aggregate(cfg: ExperimentConfig, out: Path) -> dict:
    """Per arm: accuracy mean and sd over seeds, overall and per family; fact coverage and
    the share of stage-1 sentences that are false."""
    arms, columns, rows_out = {}, None, []
    truth = heldout_truth(cfg)
    for arm in cfg.arms:
        per_seed = {"accuracy": {}, "fact_coverage": [], "false_sentences": []}
        for seed in cfg.seeds:
            dest = out / "eval" / arm / f"seed{seed}"
            result = json.loads((dest / "results.json").read_text())
            columns = result["columns"]
            for column, cell in result["accuracy"][SYSTEM[arm]].items():
                per_seed["accuracy"].setdefault(column, []).append(cell["accuracy"] or 0.0)
            rows = [json.loads(line) for line in open(dest / "predictions.jsonl")]
            rows_out += [{"arm": arm, "seed": seed, **r} for r in rows]
            scenes = [r for r in rows if {"family", "template"} <= set(r.get("meta") or {})]  # synthetic: their truth is known
            if SYSTEM[arm] != "direct" and scenes:
                per_seed["fact_coverage"].append(sum(map(fact_coverage, scenes)) / len(scenes))
                if (false := false_sentences(rows, truth)) is not None:
                    per_seed["false_sentences"].append(false)
        arms[arm] = {"accuracy": {c: _mean_sd(v) for c, v in per_seed["accuracy"].items()},
                     **{k: _mean_sd(per_seed[k]) if per_seed[k] else None for k in ("fact_coverage", "false_sentences")},
                     "items": len(rows)}
    return {"columns": columns, "arms": arms, "predictions": rows_out}


def markdown(agg: dict, sizes: dict) -> str:
    def cell(ms):
        return "-" if ms is None else f"{100 * ms['mean']:.1f} ± {100 * ms['sd']:.1f}"
    cols = agg["columns"]
    lines = ["| arm | parameters | " + " | ".join(cols) + " | facts stated | false sentences |", "|---" * (len(cols) + 4) + "|"]
    for arm, a in agg["arms"].items():
        lines.append(f"| {arm} | {sizes[arm]} | " + " | ".join(cell(a["accuracy"].get(c)) for c in cols)
                     + f" | {cell(a['fact_coverage'])} | {cell(a.get('false_sentences'))} |")
    return "\n".join(lines)


def run_experiment(cfg: ExperimentConfig) -> dict | None:
    from train_min.experiment.bundle import make_bundle, materialize

    out, times, started = Path(cfg.out), {}, time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    device = _device(cfg)
    def lap(name):
        times[name] = time.perf_counter() - started - sum(times.values())

    bundle = out / "bundle"
    if not (bundle / "manifest.json").exists():
        log(f"1/5 data: recipe {cfg.data.recipe}, filtered and unfiltered")
        from pipelines.commands.quiet import quiet

        quiet()
        ev = eval_settings(cfg)
        make_bundle(cfg.data.recipe, cfg.data.overrides, out, cfg.caption_teacher, ev.caption_template, ev.direct_template)
    manifest = json.loads((bundle / "manifest.json").read_text())
    log(f"   bundle: {manifest['rows']}")
    lap("data")
    if cfg.until == "data":
        return None
    jobs = train_jobs(cfg, out, device)
    if jobs or cfg.until == "models":
        if not (out / "data" / "materialized.json").exists():
            log("2/5 data folders (scenes drawn again) and models from scratch")
            drawn = materialize(bundle, out / "data", workers=max(1, cfg.jobs))
            log(f"   {drawn['scenes']} scenes drawn, {drawn['ids_differ']} with other image bytes")
        build_models(cfg, bundle, out / "models")
    lap("models")
    if cfg.until == "models":
        return None
    evals = eval_jobs(cfg, out, device)
    log(f"3-4/5 train {len(jobs)} models and evaluate {len(evals)} arm x seed on held-out scenes, on {device}, "
         f"{cfg.jobs} at a time")
    failed, left = schedule(jobs, evals, cfg.jobs, cfg.time_limit)
    lap("train_eval")
    if failed:
        raise RuntimeError(f"{len(failed)} jobs failed (the others are kept; a rerun does only what is missing):\n" + "\n".join(failed))
    if left:
        log(f"stopped at the time limit with {left} jobs not started; the same command again does only what is missing")
        return None
    log("5/5 report")
    agg = aggregate(cfg, out)
    runs = {arm: json.loads((out / "eval" / arm / f"seed{cfg.seeds[0]}" / "models.json").read_text()) for arm in cfg.arms}
    sizes = {arm: " + ".join(f"{n / 1e6:.1f}M" for n in r["parameters"].values()) for arm, r in runs.items()}
    devices = sorted({r["device"] for r in runs.values()})
    table = markdown(agg, sizes)
    with open(out / "predictions.jsonl", "w") as f:
        for row in agg.pop("predictions"):
            f.write(json.dumps(row) + "\n")
    import yaml

    (out / "config.yaml").write_text(yaml.safe_dump(to_plain(cfg), sort_keys=False))
    report = {**agg, "out": str(out), "table": table, "parameters": sizes, "seeds": cfg.seeds, "device": ", ".join(devices), "bundle": manifest,
              "seconds": times, "total_seconds": time.perf_counter() - started, "jobs_run": len(jobs) + len(evals)}
    (out / "results.json").write_text(json.dumps(report, indent=2))
    (out / "results.md").write_text(table + "\n")
    return report


def main(argv: list[str] | None = None) -> None:
    parsed = cli_args(argv, "miniature.yaml", __doc__)
    if parsed is None:
        return
    report = run_experiment(load_experiment(*parsed))
    if report is None:
        return
    secs = ", ".join(f"{k} {v:.0f} s" for k, v in report["seconds"].items())
    first = next(iter(report["arms"].values()))
    when = f"{report['total_seconds'] / 60:.1f} min: {secs}" if report["jobs_run"] else "from the evaluation folders already there"
    print(f"\n{len(report['seeds'])} seeds, {first['items']} held-out questions per arm and seed, on {report['device']} "
          f"({when}); accuracy % (mean ± sd):\n")
    print(report["table"])
    print(f"\nresults: {report['out']}/results.md, predictions: {report['out']}/predictions.jsonl")
