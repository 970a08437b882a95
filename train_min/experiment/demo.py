"""The offline Extract+Think demo: a tiny VLM trained from scratch on the CPU.

    python -m train_min.experiment.demo [recipes/train/tiny-vlm.yaml] [key=value ...]

1. data: run a pipeline recipe (default: the quickstart, oracle teacher) and publish it;
2. tokenizers: byte-level BPE trained on that dataset's own text, nothing downloaded;
3. models: an Idefics3 (SmolVLM architecture) perception model and a Llama reasoner with
   random weights, sized by the recipe;
4. train_min: perception SFT on the `extraction` config, reasoner SFT on `reasoning`;
5. evaluation on held-out scenes (never drawn for training): Extract+Think against the
   caption and direct-answer baselines, printed as a table.

Every step writes under `out`; a rerun skips what is finished (the pipeline's reply cache,
the trained models' final folders) and a training step interrupted part-way resumes from
its checkpoint.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

from pipelines.config import build, load_yaml, to_plain
from pipelines.config.recipe import TeacherConfig, TransformersOptions
from train_min.evaluate import EvalConfig, evaluate
from train_min.experiment.scratch import IDEFICS3_SPECIALS, LM_SPECIALS, build_idefics3, build_llama, dataset_texts, train_tokenizer
from train_min.train import TrainConfig, train


@dataclass
class DataStep:
    recipe: str = "quickstart"  # a bundled recipe name or a path
    overrides: list[str] = field(default_factory=list)


@dataclass
class VLMShape:
    image_size: int = 128  # longest edge the image is resized to
    patch_size: int = 8
    scale_factor: int = 4  # pixel shuffle: (128/8)^2 / 4^2 = 16 image tokens
    text: dict[str, Any] = field(default_factory=dict)  # LlamaConfig fields
    vision: dict[str, Any] = field(default_factory=dict)  # Idefics3VisionConfig fields


@dataclass
class DemoConfig:
    eval: dict[str, Any]  # an EvalConfig without its models: the demo fills them in
    out: str = "out/tiny-vlm"
    data: DataStep = field(default_factory=DataStep)
    vocab_size: int = 1024
    perception_model: VLMShape = field(default_factory=VLMShape)
    reasoner_model: dict[str, Any] = field(default_factory=dict)  # LlamaConfig fields
    perception: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    reasoner: dict[str, Any] = field(default_factory=dict)
    progress: bool = True


def load_demo(path: str, overrides: list[str] = ()) -> DemoConfig:
    return load_yaml(DemoConfig, path, overrides)


def _log(msg: str) -> None:
    print(f"[demo] {msg}", flush=True)


PROBE_STEPS = 4  # timed on this machine before the rest of a model's steps, for an honest estimate


def estimate(probe: dict, steps: int) -> str:
    """What the first steps of a training run (its history, a step's seconds each; the first
    step, with its warm-up, left out) say about the rest, on this machine."""
    timed = [h["seconds"] for h in probe["history"][1:]] or [h["seconds"] for h in probe["history"]]
    per_step = sum(timed) / len(timed)
    left = steps - probe["stopped_at"]
    return f"{per_step:.2f} s a step on this machine: about {_minutes(per_step * left)} for the other {left} steps"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def run_demo(cfg: DemoConfig) -> dict:
    from pipelines.commands.run import run
    from pipelines.config.recipe import read_recipe

    out, times = Path(cfg.out), {}
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    _log(f"1/5 data: recipe {cfg.data.recipe}")
    result = run(read_recipe(cfg.data.recipe, [*cfg.data.overrides, f"output.dir={out / 'data'}"]))
    data = str(result.out_dir)
    times["data"] = time.perf_counter() - started

    _log("2/5 tokenizers and models from scratch")
    models = out / "init"
    if not (models / "reasoner" / "config.json").exists():
        texts = list(dataset_texts(data))
        shape = cfg.perception_model
        build_idefics3(models / "perception", train_tokenizer(texts, IDEFICS3_SPECIALS, cfg.vocab_size), shape.image_size,
                       shape.patch_size, shape.scale_factor, text=shape.text, vision=shape.vision)
        build_llama(models / "reasoner", train_tokenizer(texts, LM_SPECIALS, cfg.vocab_size), text=cfg.reasoner_model)
    times["models"] = time.perf_counter() - started - sum(times.values())

    trained = {}
    for n, task in ((3, "perception"), (4, "reasoner")):
        tc = build(TrainConfig, {**getattr(cfg, task), "task": task, "model": str(models / task), "data": data,
                                 "out": str(out / task), "progress": cfg.progress})
        final = Path(tc.out) / "final"
        _log(f"{n}/5 train the {task} model ({tc.steps} steps)")
        if not (final / "train_config.json").exists():
            if not (Path(tc.out) / "checkpoints").exists() and tc.steps > PROBE_STEPS:
                _log(f"   {task}: {estimate(train(replace(tc, stop_after=PROBE_STEPS, log_every=1)), tc.steps)}")
            summary = train(tc)  # resumes after the probe's steps
            last = summary["history"][-1]
            _log(f"   {task}: loss {last['loss']:.3f}, eval loss {last.get('eval_loss')}")
        trained[task] = str(final)
        times[task] = time.perf_counter() - started - sum(times.values())

    _log("5/5 evaluate on held-out scenes")
    def model(path: str) -> dict:
        return to_plain(TeacherConfig(backend="transformers", model=path, batch_size=32,
                                      transformers=TransformersOptions(device="cpu", dtype="float32")))

    ec = build(EvalConfig, {**cfg.eval, "out": str(out / "eval"), "progress": cfg.progress,
                            "perception": model(trained["perception"]), "reasoner": model(trained["reasoner"])})
    summary = evaluate(ec)
    times["eval"] = time.perf_counter() - started - sum(times.values())
    report = {"data": data, "models": trained, "eval": str(out / "eval"), "seconds": times,
              "total_seconds": time.perf_counter() - started, "records": summary["records"], "items": summary["items"],
              "table": summary["table"]}
    (out / "demo.json").write_text(json.dumps(report, indent=2))
    return report


def cli_args(argv: list[str] | None, default: str, doc: str) -> tuple[str, list[str]] | None:
    """`[RECIPE] [key=value ...]` -> (recipe path, overrides), RECIPE defaulting to the bundled
    recipes/train/`default`; None after printing `doc` for -h/--help."""
    args = sys.argv[1:] if argv is None else argv
    if args and args[0] in ("-h", "--help"):
        print(doc)
        return None
    recipe = args[0] if args and "=" not in args[0] else str(resources.files("recipes") / "train" / default)
    return recipe, [a for a in args if "=" in a]


def main(argv: list[str] | None = None) -> None:
    parsed = cli_args(argv, "tiny-vlm.yaml", __doc__)
    if parsed is None:
        return
    report = run_demo(load_demo(*parsed))
    secs = ", ".join(f"{k} {v:.0f} s" for k, v in report["seconds"].items())
    print(f"\nExtract+Think on {report['records']} held-out scenes, {report['items']} questions "
          f"(accuracy %, {report['total_seconds'] / 60:.1f} min: {secs}):\n")
    print(report["table"])
    print(f"\npredictions: {report['eval']}/predictions.jsonl")


if __name__ == "__main__":
    main()
