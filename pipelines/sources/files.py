"""Readers of file-based sources: LLaVA conversation JSON + an image folder, and an
imagefolder with metadata.jsonl. They only parse; `ingest.to_record` checks and loads.

Paths may be local or any fsspec URL (gs://, s3://, ...), so workers that share nothing but
storage can read them.
"""

from __future__ import annotations

import json
from typing import Any, Iterator

import fsspec

from pipelines.config import ConfigError
from pipelines.config.source_config import SourceConfig
from pipelines.sources.gold import Rules
from pipelines.sources.image_files import Problem
from pipelines.sources.ingest import RawItem, access_for
from pipelines.sources.mapping import mapped_fields, row_images


def parent(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[0] if "/" in path.rstrip("/") else "."


def require_file(path: str, what: str) -> None:
    fs, _, [p] = fsspec.get_fs_token_paths(path)
    if not fs.exists(p):
        raise ConfigError(f"{what}: {path} does not exist")


def _json_entries(path: str) -> Iterator[tuple[int, Any, str | None]]:
    """(index, entry, parse error) for a JSON list or a JSON-lines file. A line that is not
    UTF-8 or not JSON is one error; a JSON list that cannot be parsed is one error for the
    whole file (index -1): no entry of it can be told apart."""
    with fsspec.open(path, "rb") as f:
        head = f.read(4096)
        f.seek(0)
        if head.lstrip().startswith(b"["):
            try:
                entries = json.loads(f.read().decode("utf-8"))
            except UnicodeDecodeError as e:
                yield -1, None, f"{path} is not UTF-8 (byte {e.start})"
                return
            except json.JSONDecodeError as e:
                yield -1, None, f"{path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}"
                return
            for i, entry in enumerate(entries if isinstance(entries, list) else [entries]):
                yield i, entry, None
            return
        for i, raw in enumerate(f):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                yield i, None, f"line {i + 1} is not UTF-8 (byte {e.start})"
                continue
            if not line.strip():
                continue
            try:
                yield i, json.loads(line), None
            except json.JSONDecodeError as e:
                yield i, None, f"line {i + 1} is not JSON: {e.msg}"


def read_llava(config: SourceConfig) -> Iterator[RawItem]:
    """One RawItem per entry: `{"id", "image": path or [paths], "conversations": [...]}`.
    An entry without an image becomes a `no_image` row (the paper had to skip those)."""
    cfg = config.llava
    access = access_for(config, cfg.image_root or parent(cfg.json))
    name = cfg.json.rstrip("/").rsplit("/", 1)[-1]
    rules = Rules.of(config)
    count = 0
    for i, entry, error in _json_entries(cfg.json):
        if config.limit is not None and count >= config.limit:
            return
        count += 1
        origin = f"{name}#{i}" if i >= 0 else name
        if error:
            yield RawItem(config.name, config.license, origin, problem=("entry_malformed" if i >= 0 else "file_malformed", error))
            continue
        if not isinstance(entry, dict):
            yield RawItem(config.name, config.license, origin, problem=("entry_malformed", f"entry is a {type(entry).__name__}, not an object"))
            continue
        if "id" in entry:
            origin += f" (id {str(entry['id'])[:100]})"
        if "conversations" not in entry:
            yield RawItem(config.name, config.license, origin, problem=("conversation_missing", "the entry has no `conversations`"))
            continue
        image = entry.get("image")
        images = tuple(image) if isinstance(image, list) else (image,) if image is not None else ()
        yield RawItem(config.name, config.license, origin, {"conversations": entry["conversations"]}, images, access, rules=rules)


def imagefolder_dir(config: SourceConfig) -> str:
    """The folder holding metadata.jsonl: the split's sub-folder, or the folder itself."""
    base = config.imagefolder.dir.rstrip("/")
    return f"{base}/{config.imagefolder.split}" if config.imagefolder.split else base


def read_imagefolder(config: SourceConfig) -> Iterator[RawItem]:
    """Hugging Face's imagefolder layout: images beside a metadata.jsonl whose rows name
    their image in `file_name` (relative to the metadata file) and carry the other columns."""
    cfg = config.imagefolder
    folder = imagefolder_dir(config)
    path = f"{folder}/metadata.jsonl"
    access = access_for(config, folder)
    rules = Rules.of(config)
    count = 0
    for i, row, error in _json_entries(path):
        if config.limit is not None and count >= config.limit:
            return
        count += 1
        origin = f"metadata.jsonl line {i + 1}" if i >= 0 else "metadata.jsonl"
        if error or not isinstance(row, dict):
            detail = error or f"line {i + 1} is a {type(row).__name__}, not an object"
            yield RawItem(config.name, config.license, origin, problem=("metadata_malformed" if i >= 0 else "file_malformed", detail))
            continue
        try:
            refs = row_images(row, cfg.columns)
            if len(refs) != 1 or not isinstance(refs[0], str) or not refs[0].strip():
                raise Problem("image_reference_missing", f"the row has no `{cfg.columns.image}`")
            origin += f" ({refs[0][:200]})"
            yield RawItem(config.name, config.license, origin, mapped_fields(row, cfg.columns), refs, access, rules=rules)
        except Problem as p:
            yield RawItem(config.name, config.license, origin, problem=(p.reason, p.detail))


def _missing(path: str, what: str, folder: bool = False) -> str | None:
    fs, _, [p] = fsspec.get_fs_token_paths(path)
    if not fs.exists(p):
        return f"{what}: {path} does not exist"
    if folder and not fs.isdir(p):
        return f"{what}: {path} is not a folder"
    return None


def file_problems(config: SourceConfig, where: str = "sources") -> list[str]:
    """What a source needs on disk and does not find: its LLaVA JSON, the image_root it
    names, an imagefolder and its metadata.jsonl; one line each."""
    found = []
    if config.kind == "llava":
        found += [_missing(config.llava.json, f"{where}[{config.name}].llava.json")]
        if config.llava.image_root:
            found += [_missing(config.llava.image_root, f"{where}[{config.name}].llava.image_root", folder=True)]
    elif config.kind == "imagefolder":
        folder = _missing(imagefolder_dir(config), f"{where}[{config.name}].imagefolder.dir", folder=True)
        found += [folder or _missing(f"{imagefolder_dir(config)}/metadata.jsonl", f"{where}[{config.name}].imagefolder")]
    elif config.kind == "hf" and config.hf.image_root:
        found += [_missing(config.hf.image_root, f"{where}[{config.name}].hf.image_root", folder=True)]
    return [p for p in found if p]


def check_files(config: SourceConfig) -> None:
    """Fail the run before it starts when a source's file is not there."""
    problems = file_problems(config)
    if problems:
        raise ConfigError("\n".join(problems))
