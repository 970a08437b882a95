"""Exports of a publish in the shapes real trainers read.

The `extraction` config (the perception model: image + the student's prompt -> extraction):
- TRL (`trl`): a `datasets` folder (parquet + card) in TRL's conversational prompt-completion
  form: `prompt` (a user turn: the image placeholder and the student's prompt), `completion`
  (the assistant's extraction) and `images` (a list with the one image). `SFTTrainer` reads
  it as is and, for this form, computes the loss on the completion only.
- LLaVA (`llava`): `llava.json`, a list of {"id", "image", "conversations": [{"from": "human",
  "value": "<image>\\n<prompt>"}, {"from": "gpt", "value": <extraction>}]}, with the images
  beside it under `images/` (PNG or JPEG as published, named by record id when the id is a
  plain file name, else by a hash of it: `output.safe_name`).

The `reasoning` config (the reasoner: the exact prompt the think stage sent, text only -> the
reasoning trace): TRL's prompt-completion form with plain-text turns; LLaVA's form without
an `image` key (a text-only conversation).

Each export holds an `export.json` naming its format and config: a later export may
replace a folder that has one (or an empty or absent folder), never anything else.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import datasets
import fsspec

from pipelines.output import inside, protected, safe_name
from pipelines.replace import Replacement

FORMATS = ("trl", "llava")
EXPORTED = ("extraction", "reasoning")
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


def _rows(published: Path, config: str) -> datasets.Dataset:
    if not (published / config).is_dir():
        raise ValueError(f"{published} has no {config} config (nothing was kept, or it is not a publish)")
    ds = datasets.load_dataset(str(published), config, split="train")
    if config == "reasoning" and "prompt" not in ds.column_names:
        raise ValueError(f"{published}: its reasoning config has no `prompt` column (published by an older version); "
                         "rerun the recipe (replies come from the cache) to publish it")
    return ds.cast_column("image", datasets.Image(decode=False)) if "image" in ds.column_names else ds


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


def _write_trl(src: Path, tmp: Path, config: str) -> None:
    ds = _rows(src, config)
    out = ds.map(trl_row, remove_columns=ds.column_names, features=TRL_FEATURES[config])
    (tmp / "data").mkdir(parents=True)
    # a fresh name per export: `datasets` caches local folders by their card's file patterns,
    # and would serve an earlier export of the same folder name otherwise
    name = f"data/train-{uuid.uuid4().hex[:8]}.parquet"
    out.to_parquet(str(tmp / name))
    what = "a vision-language model" if config == "extraction" else "a language model (text only)"
    (tmp / "README.md").write_text(
        f"---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: {name}\n---\n\n"
        f"TRL export of the {config} config of {src.name}: prompt-completion form (`prompt`, `completion`"
        f"{', `images`' if config == 'extraction' else ''}), for `trl.SFTTrainer` with {what}; "
        "the loss is on the completion only.\n")


def _write_llava(src: Path, tmp: Path, config: str) -> None:
    ds = _rows(src, config)
    entries, used = [], set()
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
    (tmp / "llava.json").write_text(json.dumps(entries, ensure_ascii=False, indent=1))


def check_destination(dest: Path) -> None:
    """An export replaces `dest` as a whole: it must be absent, empty or an earlier export."""
    why = protected(dest)
    if why:
        raise ExportRefused(f"--to {dest} is {why}; an export replaces its folder as a whole: name a new folder")
    if dest.exists() and not dest.is_dir():
        raise ExportRefused(f"--to {dest} is a file; an export replaces its folder as a whole: name a new folder")
    if dest.is_dir() and any(dest.iterdir()) and not (dest / MARKER).is_file():
        raise ExportRefused(f"--to {dest} holds files that are not an export of this tool (no {MARKER}); "
                            "name a new or empty folder")


def export(published: str | Path, fmt: str, dest: str | Path, config: str = "extraction") -> Path:
    """Export one config of a local publish (`config`: extraction or reasoning) for TRL or LLaVA
    into `dest`, written beside it and swapped in as a run's output is (pipelines/replace.py),
    so an interrupted export leaves the old one."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
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
        (_write_trl if fmt == "trl" else _write_llava)(Path(published), tmp, config)
        (tmp / MARKER).write_text(json.dumps({"format": fmt, "config": config}) + "\n")
        replacing.commit()
    return dest
