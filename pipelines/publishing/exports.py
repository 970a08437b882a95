"""Exports of a publish in the shapes real trainers read.

The `extraction` config (the perception model: image + the student's prompt -> extraction):
- TRL (`trl`): a `datasets` folder (parquet + card) in TRL's conversational prompt-completion
  form: `prompt` (a user turn: the image placeholder and the student's prompt), `completion`
  (the assistant's extraction) and `images` (a list with the one image). `SFTTrainer` reads
  it as is and, for this form, computes the loss on the completion only.
- LLaVA (`llava`): `llava.json` (and `llava_test.json` for the test split), a list of {"id", "image", "conversations": [{"from": "human",
  "value": "<image>\\n<prompt>"}, {"from": "gpt", "value": <extraction>}]}, with the images
  beside it under `images/` (PNG or JPEG as published, named by record id when the id is a
  plain file name, else by a hash of it: `output.safe_name`).

The `reasoning` config (the reasoner: the exact prompt the think stage sent, text only -> the
reasoning trace): TRL's prompt-completion form with plain-text turns; LLaVA's form without
an `image` key (a text-only conversation).

Both carry the publish's splits (`train`, and `test` where it held records out). Each export
holds an `export.json` naming its format and config: a later export may
replace a folder that has one (or an empty or absent folder), never anything else.
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import datasets
import fsspec

from pipelines.publishing.output import inside, replace_problem, safe_name
from pipelines.publishing.replace import Replacement

FORMATS = ("trl", "llava")
EXPORTED = ("extraction", "reasoning")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}")
MARKER = "export.json"  # what marks a folder as an export this tool may replace
_S = datasets.Value("string")
_TYPED_TURN = {"role": _S, "content": datasets.List({"type": _S, "text": _S})}
TRL_FEATURES = {
    "extraction": datasets.Features({"id": _S, "prompt": datasets.List(_TYPED_TURN), "completion": datasets.List(_TYPED_TURN),
                                     "images": datasets.List(datasets.Image())}),
    "reasoning": datasets.Features({"id": _S, "prompt": datasets.List({"role": _S, "content": _S}),
                                    "completion": datasets.List({"role": _S, "content": _S})}),
}


class ExportRefused(ValueError):
    """The destination is not an export of this tool; nothing was written."""


def _splits(published: Path, config: str) -> dict[str, datasets.Dataset]:
    """{split: rows} of one config: `train`, and `test` where the publish held records out."""
    if not (published / config).is_dir():
        raise ValueError(f"{published} has no {config} config (nothing was kept, or it is not a publish)")
    loaded = datasets.load_dataset(str(published), config)
    out = {}
    for split in sorted(loaded, key=lambda name: (name != "train", name)):
        ds = loaded[split]
        if config == "reasoning" and "prompt" not in ds.column_names:
            raise ValueError(f"{published}: its reasoning config has no `prompt` column (published by an older version); "
                             "rerun the recipe (replies come from the cache) to publish it")
        out[split] = ds.cast_column("image", datasets.Image(decode=False)) if "image" in ds.column_names else ds
    return out


def trl_row(row: dict) -> dict:
    """One row in TRL's conversational prompt-completion form."""
    if "image" in row:  # extraction
        return {
            "id": row["id"],
            "prompt": [{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": row["prompt"]}]}],
            "completion": [{"role": "assistant", "content": [{"type": "text", "text": row["extraction"]}]}],
            "images": [row["image"]],
        }
    return {"id": row["id"], "prompt": [{"role": "user", "content": row["prompt"]}],
            "completion": [{"role": "assistant", "content": row["reasoning"]}]}


def _write_trl(src: Path, tmp: Path, config: str) -> dict:
    (tmp / "data").mkdir(parents=True)
    # a fresh name per export: `datasets` caches local folders by their card's file patterns,
    # and would serve an earlier export of the same folder name otherwise
    run = uuid.uuid4().hex[:8]
    files, rows = [], {}
    for split, ds in _splits(src, config).items():
        out = ds.map(trl_row, remove_columns=ds.column_names, features=TRL_FEATURES[config])
        name = f"data/{split}-{run}.parquet"
        out.to_parquet(str(tmp / name))
        files.append({"split": split, "path": name})
        rows[split] = len(out)
    return {"configs": [{"config_name": "default", "data_files": files}],
            "dataset_info": datasets.DatasetInfo(features=TRL_FEATURES[config])._to_yaml_dict(), "rows": rows}


def llava_file(split: str) -> str:
    """The conversations of a split in a LLaVA export: llava.json (train), llava_<split>.json."""
    return "llava.json" if split == "train" else f"llava_{split}.json"


def _write_llava(src: Path, tmp: Path, config: str) -> dict:
    used, rows = set(), {}
    for split, ds in _splits(src, config).items():
        entries = _llava_entries(ds, config, tmp, used)
        (tmp / llava_file(split)).write_text(json.dumps(entries, ensure_ascii=False, indent=1))
        rows[split] = len(entries)
    return {"rows": rows}


def _llava_entries(ds, config: str, tmp: Path, used: set) -> list[dict]:
    entries = []
    for row in ds:
        if config == "reasoning":
            entries.append({"id": row["id"], "conversations": [
                {"from": "human", "value": row["prompt"]}, {"from": "gpt", "value": row["reasoning"]}]})
            continue
        data = row["image"]["bytes"]
        suffix = ".jpg" if data[:3] == b"\xff\xd8\xff" else ".png"
        stem = safe_name(row["id"])  # an id is data: `../../x` names no path
        while stem in used:
            stem = safe_name(f"{stem}-again")
        used.add(stem)
        name = f"images/{stem}{suffix}"
        (tmp / "images").mkdir(exist_ok=True)
        inside(tmp / "images", f"{stem}{suffix}").write_bytes(data)
        entries.append({"id": row["id"], "image": name, "conversations": [
            {"from": "human", "value": f"<image>\n{row['prompt']}"},
            {"from": "gpt", "value": row["extraction"]},
        ]})
    return entries


_TRL_SNIPPET = {
    "extraction": ("AutoModelForImageTextToText", "AutoProcessor", "HuggingFaceTB/SmolVLM-256M-Instruct", "an image-text-to-text model"),
    "reasoning": ("AutoModelForCausalLM", "AutoTokenizer", "HuggingFaceTB/SmolLM2-135M-Instruct", "a causal language model"),
}


def trl_snippet(dataset: str, config: str) -> str:
    """How to train on a TRL export, as its card shows it (a test runs it as written, with a
    tiny model for MODEL)."""
    model_class, processor_class, model, what = _TRL_SNIPPET[config]
    return f"""import torch
from datasets import load_dataset
from transformers import {model_class}, {processor_class}
from trl import SFTConfig, SFTTrainer

MODEL = "{model}"  # {what}
data = load_dataset({json.dumps(dataset)})  # train, and test where the publish held records out
args = SFTConfig(output_dir="out/sft", max_length=None, eval_strategy="epoch" if "test" in data else "no",
                 use_cpu=not torch.cuda.is_available())
trainer = SFTTrainer(model={model_class}.from_pretrained(MODEL), processing_class={processor_class}.from_pretrained(MODEL),
                     train_dataset=data["train"], eval_dataset=data.get("test"), args=args)
trainer.train()  # the loss is on the completion only"""


def _card(src: Path, dest: Path, fmt: str, config: str, written: dict, source_dataset: str | None) -> str:
    """The export's card: the publish's licenses and languages, where it came from, its
    features (TRL) and how to train on it; through huggingface_hub's card data."""
    from huggingface_hub import DatasetCard, DatasetCardData

    from pipelines.core.templates import md_code, md_text

    origin = DatasetCard.load(src / "README.md").data.to_dict() if (src / "README.md").is_file() else {}
    keep = {k: origin[k] for k in ("license", "license_name", "license_link", "language", "annotations_creators") if origin.get(k)}
    if keep.get("license_link") and not (src / keep["license_link"]).is_file():
        keep.pop("license_link")
    data = DatasetCardData(
        **keep, source_datasets=[f"extended|{source_dataset}"] if source_dataset else None,
        task_categories=["image-text-to-text"] if config == "extraction" else ["text-generation"],
        tags=["extract-think", f"{fmt}-export", config], pretty_name=f"{origin.get('pretty_name') or src.name}: {fmt} export ({config})",
        **{k: written[k] for k in ("configs", "dataset_info") if k in written})
    came_from = f"[{md_text(source_dataset)}](https://huggingface.co/datasets/{source_dataset})" if source_dataset else md_code(str(src))
    counts = ", ".join(f"{n} {split}" for split, n in written["rows"].items())
    if fmt == "trl":
        body = (f"The `{config}` config of {came_from} (an extract-think dataset), rows ({counts}) in TRL's conversational "
                f"prompt-completion form: `prompt`, `completion`{', `images`' if config == 'extraction' else ''}. "
                "`trl.SFTTrainer` reads it as is and puts the loss on the completion only:\n\n"
                f"```python\n{trl_snippet(str(dest), config)}\n```\n")
    else:
        files = " and ".join(f"`{llava_file(split)}` ({n} {split})" for split, n in written["rows"].items())
        body = (f"The `{config}` config of {came_from} (an extract-think dataset) as conversations in LLaVA's "
                f"form: {files}, each a list of {{id, " + ("image, " if config == "extraction" else "")
                + "conversations: [{from: human, value}, {from: gpt, value}]}"
                + (", with the images under `images/`" if config == "extraction" else "") + "; point a LLaVA-style trainer's "
                "`data_path` at `llava.json` and its `image_folder` at this folder.\n")
    licenses = f"\nLicense: {keep['license']}" + (f" (each source's: {keep['license_link']} of the dataset it came from)"
                                                    if keep.get("license_name") else "") + ".\n" if keep.get("license") else ""
    return DatasetCard.from_template(data, template_str="---\n{{ card_data }}\n---\n\n# {{ pretty_name }}\n\n{{ body }}{{ licenses }}",
                                     pretty_name=md_text(data.pretty_name), body=body, licenses=licenses).content


def check_destination(dest: Path) -> None:
    """An export replaces `dest` as a whole: it must be absent, empty or an earlier export."""
    problem = replace_problem(fsspec.filesystem("file"), str(dest), lambda folder: (Path(folder) / MARKER).is_file(),
                              f"an export of this tool (no {MARKER})")
    if problem:
        raise ExportRefused(f"--to {dest} {problem}; an export replaces its folder as a whole: name a new or empty folder")


def export(published: str | Path, fmt: str, dest: str | Path, config: str = "extraction", source_dataset: str | None = None) -> Path:
    """Export one config of a local publish (`config`: extraction or reasoning) for TRL or LLaVA
    into `dest`, written beside it and swapped in as a run's output is (pipelines/publishing/replace.py),
    so an interrupted export leaves the old one. `source_dataset`: the Hub id the publish was
    pushed to, for the export card's `source_datasets` and link."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if source_dataset is not None and not HUB_ID.fullmatch(source_dataset):
        raise ValueError(f"--source-dataset: a Hub dataset id owner/name, got {source_dataset!r}")
    if config not in EXPORTED:
        raise ValueError(f"config must be one of {EXPORTED}, got {config!r}")
    if "://" in str(published):
        raise ValueError(f"{published}: export reads a local folder; copy the dataset here first (aws s3 sync, gsutil rsync) "
                         "or run with a local output.dir")
    dest = Path(dest).expanduser().resolve()
    check_destination(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with Replacement(fsspec.filesystem("file"), str(dest), lambda folder: (Path(folder) / MARKER).is_file()) as replacing:
        tmp = Path(replacing.staging)
        written = (_write_trl if fmt == "trl" else _write_llava)(Path(published), tmp, config)
        (tmp / "README.md").write_text(_card(Path(published), dest, fmt, config, written, source_dataset))
        (tmp / MARKER).write_text(json.dumps({"format": fmt, "config": config}) + "\n")
        replacing.commit()
    return dest
