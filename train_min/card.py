"""The model card of a trained model's folder (`README.md`, as the Hub and `huggingface_hub`
read it): YAML metadata (the base model and dataset where they are Hub ids, the library, the
task, tags) and a body with the base model, the data and its config, the run's settings, its
steps, the final losses and, once `train_min.evaluate` has run on the model, its table
(and its results as the card's `model-index`)."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from pipelines.core.templates import md_code, md_text

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
EVALUATION = "## Evaluation"


def _hub_id(value: str) -> str | None:
    return value if _HUB_ID.fullmatch(value) and not Path(value).exists() else None


def write_model_card(folder: Path, summary: dict) -> Path:
    """README.md in `folder` from a train() summary."""
    cfg, history = summary["config"], summary["history"]
    last = history[-1] if history else {}
    evals = [h["eval_loss"] for h in history if "eval_loss" in h and h["eval_loss"] is not None]
    config = {"perception": "extraction", "reasoner": "reasoning"}[cfg["task"]]
    meta = {"library_name": "transformers",
            "pipeline_tag": "image-text-to-text" if cfg["task"] == "perception" else "text-generation",
            "tags": ["extract-think", "train_min", "visual-extraction-tuning" if cfg["task"] == "perception" else "reasoning"]}
    if _hub_id(cfg["model"]):
        meta["base_model"] = cfg["model"]
    if _hub_id(cfg["data"]):
        meta["datasets"] = [cfg["data"]]
    what = ("the perception model of Extract+Think: image + \"describe ..., paying special attention to <focus>\" -> extraction"
            if cfg["task"] == "perception" else "the reasoner of Extract+Think: extraction + question -> reasoning ending in `Answer: X`")
    lines = [
        "---", yaml.safe_dump(meta, sort_keys=False).strip(), "---", "",
        f"# {md_text(Path(cfg['out']).name)}", "",
        f"{what.capitalize()}, fine-tuned with train_min (extract-think).", "",
        f"- base model: {md_code(cfg['model'])}",
        f"- data: {md_code(cfg['data'])}, config {md_code(config)} ({summary['train_examples']} training examples, "
        f"{summary['eval_examples']} held out: the dataset's test split, {summary['skipped_too_long']} skipped: prompt longer "
        f"than max_length)",
        f"- steps: {last.get('step', 0)} of {cfg['steps']}, {summary['processes']} process(es) on {summary['device']}",
        f"- final training loss: {last.get('loss', float('nan')):.4f}" + (f"; final evaluation loss: {evals[-1]:.4f}" if evals else ""),
        "", "## Training settings", "", "| setting | value |", "|---|---|",
        *(f"| {md_text(k)} | {md_code(v)} |" for k, v in cfg.items()), "",
        "Load it with `AutoModelForImageTextToText.from_pretrained` and `AutoProcessor.from_pretrained`" if cfg["task"] == "perception"
        else "Load it with `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained`",
        "(this folder); `train_config.json` beside this card holds the whole run's history.", "",
    ]
    path = Path(folder) / "README.md"
    path.write_text("\n".join(lines))
    return path


def add_evaluation(folder: Path, table: str, detail: str, accuracy: dict | None = None, heldout: str = "held-out") -> bool:
    """The Extract+Think evaluation's table in the card of a model train_min made (replacing an
    earlier one), and its results in the card's metadata as the Hub's `model-index` (one
    accuracy per system and column of `accuracy`, {system: {column: {accuracy, n}}}, through
    huggingface_hub's card data); False when `folder` holds no such card."""
    from huggingface_hub import EvalResult, ModelCard

    path = Path(folder) / "README.md"
    if not path.is_file() or "train_min" not in path.read_text():
        return False
    card = ModelCard(path.read_text())
    body = card.text.split(f"\n{EVALUATION}\n", 1)[0].rstrip("\n")
    card.text = f"{body}\n\n{EVALUATION}\n\n{detail}\n\n{table}\n"
    if accuracy:
        card.data.model_name = card.data.model_name or Path(folder).parent.name or Path(folder).name
        card.data.eval_results = [
            EvalResult(task_type="visual-question-answering", task_name="Extract+Think", dataset_type="extract-think/heldout",
                       dataset_name=heldout, dataset_config=column, dataset_split="heldout", metric_type="accuracy",
                       metric_name=f"accuracy ({system}, n={cell['n']})", metric_config=system,
                       metric_value=round(100 * cell["accuracy"], 2))
            for system, cells in accuracy.items() for column, cell in cells.items() if cell.get("accuracy") is not None]
    card.save(path)
    return True
