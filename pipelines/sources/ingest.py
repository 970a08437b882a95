"""Rows as the readers find them (`RawItem`) and their conversion into Records.

Readers (hf, llava, imagefolder) only *read*: they emit a RawItem per row with whatever
values and image references they found. `to_record` does the rest in parallel workers:
record checks, image loading and normalisation. It never raises: a row that cannot be used
becomes a Record with status "rejected" and a named reason, with its origin, so the user can
find the bad input and the funnel still adds up.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass, field
from typing import Any

import fsspec
from PIL import Image

from pipelines.record import ImageData, Record, Turn, record_id
from pipelines.source_config import IngestConfig
from pipelines.sources.checks import check_turn_count, conversation_turns, make_turn
from pipelines.sources.images import Problem, normalise


@dataclass(frozen=True)
class RawItem:
    source: str
    license: str
    origin: str  # "file.json#12", "train row 5", ...: where to find it
    fields: dict = field(default_factory=dict)  # question, answer, choices or conversations, as read
    images: tuple = ()  # bytes, a path or URL, a {"bytes", "path"} dict, a PIL image, or None (absent)
    image_root: str = ""  # what relative paths are relative to
    problem: tuple[str, str] | None = None  # the reader could not even parse the row: (reason, detail)


def _is_absolute(path: str) -> bool:
    return "://" in path or os.path.isabs(path)


def read_image_bytes(ref: Any, root: str, what: str) -> bytes:
    if isinstance(ref, bytes):
        return ref
    if isinstance(ref, Image.Image):
        buf = io.BytesIO()
        ref.save(buf, format="PNG")
        return buf.getvalue()
    if isinstance(ref, dict):
        if ref.get("bytes") is not None:
            return ref["bytes"]
        ref = ref.get("path")
    if not isinstance(ref, str) or not ref.strip():
        raise Problem("image_reference_missing", f"{what}: no path or bytes given ({ref!r})")
    path = ref if _is_absolute(ref) or not root else f"{root.rstrip('/')}/{ref}"
    try:
        with fsspec.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise Problem("image_missing", f"{what}: no file at {path}") from None
    except IsADirectoryError:
        raise Problem("image_missing", f"{what}: {path} is a folder, not a file") from None
    except PermissionError:
        raise Problem("image_unreadable", f"{what}: no permission to read {path}") from None


def _turns(item: RawItem, config: IngestConfig) -> tuple[list[Turn], int | None]:
    f = item.fields
    if f.get("conversations") is not None:
        return conversation_turns(f["conversations"], config.checks)
    return [make_turn(f.get("question"), f.get("answer"), f.get("choices"), config.checks)], None


def _images(item: RawItem, config: IngestConfig, placeholders: int | None) -> tuple[ImageData, ...]:
    refs = [r for r in item.images if r is not None]
    if not refs:
        raise Problem("no_image", "the record has no image")
    # a conversation names its images with <image>: as many as there are (none is read as one, first)
    if placeholders is not None and (placeholders not in (0, len(refs)) or (placeholders == 0 and len(refs) > 1)):
        raise Problem("image_placeholder_mismatch", f"{placeholders} <image> placeholders for {len(refs)} images")
    out = []
    for i, ref in enumerate(refs):
        what = "image" if len(refs) == 1 else f"image {i}"
        out.append(normalise(read_image_bytes(ref, item.image_root, what), config.images, what))
    return tuple(out)


def to_record(item: RawItem, config: IngestConfig) -> Record:
    turns: list[Turn] = []
    try:
        if item.problem:
            raise Problem(*item.problem)
        turns, placeholders = _turns(item, config)
        check_turn_count(turns, config.checks)
        images = _images(item, config, placeholders)
    except Problem as p:
        return _rejected(item, turns, p.reason, p.detail)
    except Exception as e:  # noqa: BLE001 - a bad row must never stop the run; the reason says what broke
        return _rejected(item, turns, "unreadable_record", f"{type(e).__name__}: {e}")
    return Record(record_id(item.source, images, tuple(turns)), item.source, item.license, images, tuple(turns), origin=item.origin)


def _rejected(item: RawItem, turns: list[Turn], reason: str, detail: str) -> Record:
    rid = hashlib.sha256(f"{item.source}\0{item.origin}".encode()).hexdigest()[:20]
    return Record(rid, item.source, item.license, (), tuple(turns), origin=item.origin).reject(reason, detail)
