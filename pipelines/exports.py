"""Exports of the `extraction` config in the shapes real trainers read.

- TRL (`trl`): a `datasets` folder (parquet + card) with `messages` (a user turn holding the
  image placeholder and the student's prompt, an assistant turn holding the extraction, in
  the typed-content form TRL's vision SFT expects) and `images` (a list with the one image).
  `SFTTrainer` reads it as is: `load_dataset(path, split="train")`.
- LLaVA (`llava`): `llava.json`, a list of {"id", "image", "conversations": [{"from": "human",
  "value": "<image>\\n<prompt>"}, {"from": "gpt", "value": <extraction>}]}, with the images
  beside it under `images/` (PNG or JPEG as published, named by record id).

Each export holds an `export.json` naming its format: a later export may replace a folder
that has one (or an empty or absent folder), never anything else.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import datasets

from pipelines.output import protected

FORMATS = ("trl", "llava")
MARKER = "export.json"  # what marks a folder as an export this tool may replace


class ExportRefused(ValueError):
    """The destination is not an export of this tool; nothing was written."""


def _extraction(published: Path) -> datasets.Dataset:
    if not (published / "extraction").is_dir():
        raise ValueError(f"{published} has no extraction config (nothing was kept, or it is not a publish)")
    return datasets.load_dataset(str(published), "extraction", split="train").cast_column("image", datasets.Image(decode=False))


def trl_row(row: dict) -> dict:
    return {
        "id": row["id"],
        "messages": [
            {"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": row["prompt"]}]},
            {"role": "assistant", "content": [{"type": "text", "text": row["extraction"]}]},
        ],
        "images": [row["image"]],
    }


def export_trl(published: str | Path, dest: str | Path) -> Path:
    src, dest = Path(published), Path(dest)
    ds = _extraction(src)
    features = datasets.Features({
        "id": datasets.Value("string"),
        "messages": datasets.List({"role": datasets.Value("string"),
                                   "content": datasets.List({"type": datasets.Value("string"), "text": datasets.Value("string")})}),
        "images": datasets.List(datasets.Image()),
    })
    out = ds.map(trl_row, remove_columns=ds.column_names, features=features)
    tmp = dest.parent / f".{dest.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "data").mkdir(parents=True)
    # a fresh name per export: `datasets` caches local folders by their card's file patterns,
    # and would serve an earlier export of the same folder name otherwise
    name = f"data/train-{uuid.uuid4().hex[:8]}.parquet"
    out.to_parquet(str(tmp / name))
    (tmp / "README.md").write_text(
        f"---\nconfigs:\n- config_name: default\n  data_files:\n  - split: train\n    path: {name}\n---\n\n"
        f"TRL export of {src.name}: `messages` + `images`, for `trl.SFTTrainer` with a vision-language model.\n")
    _replace(tmp, dest, "trl")
    return dest


def export_llava(published: str | Path, dest: str | Path) -> Path:
    src, dest = Path(published), Path(dest)
    ds = _extraction(src)
    tmp = dest.parent / f".{dest.name}.partial"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "images").mkdir(parents=True)
    entries = []
    for row in ds:
        data = row["image"]["bytes"]
        suffix = ".jpg" if data[:3] == b"\xff\xd8\xff" else ".png"
        name = f"images/{row['id']}{suffix}"
        (tmp / name).write_bytes(data)
        entries.append({"id": row["id"], "image": name, "conversations": [
            {"from": "human", "value": f"<image>\n{row['prompt']}"},
            {"from": "gpt", "value": row["extraction"]},
        ]})
    (tmp / "llava.json").write_text(json.dumps(entries, ensure_ascii=False, indent=1))
    _replace(tmp, dest, "llava")
    return dest


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


def export(published: str | Path, fmt: str, dest: str | Path) -> Path:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    if "://" in str(published):
        raise ValueError(f"{published}: export reads a local folder; copy the dataset here first (aws s3 sync, gsutil rsync) "
                         "or run with a local output.dir")
    dest = Path(dest).expanduser().resolve()
    check_destination(dest)
    return (export_trl if fmt == "trl" else export_llava)(published, dest)


def _replace(tmp: Path, dest: Path, fmt: str) -> None:
    """Swap the finished export into place, so an interrupted export leaves the old one."""
    (tmp / MARKER).write_text(json.dumps({"format": fmt}) + "\n")
    old = dest.parent / f".{dest.name}.old"
    shutil.rmtree(old, ignore_errors=True)
    if dest.exists():
        dest.rename(old)
    tmp.rename(dest)
    shutil.rmtree(old, ignore_errors=True)
