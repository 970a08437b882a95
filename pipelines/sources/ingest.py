"""Rows as the readers find them (`RawItem`) and their conversion into Records.

Readers (hf, llava, imagefolder) only *read*: they emit a RawItem per row with whatever
values and image references they found. `to_record` does the rest in parallel workers:
record checks, image loading and normalisation. It never raises: a row that cannot be used
becomes a Record with status "rejected" and a named reason, with its origin, so the user can
find the bad input and the funnel still adds up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from pipelines.config.source_config import IngestConfig, SourceConfig
from pipelines.core.record import ImageData, Record, Turn, record_id
from pipelines.sources.access import ImageAccess, read_image_bytes
from pipelines.sources.checks import check_turn_count, conversation_turns, make_turn
from pipelines.sources.gold import Rules
from pipelines.sources.image_files import Problem, normalise


@dataclass(frozen=True)
class RawItem:
    source: str
    license: str
    origin: str  # "file.json#12", "train row 5", ...: where to find it
    fields: dict = field(default_factory=dict)  # question, answer, choices or conversations, as read
    images: tuple = ()  # bytes, a path or URL, a {"bytes", "path"} dict, a PIL image, or None (absent)
    access: ImageAccess = ImageAccess()  # where image paths may lead
    problem: tuple[str, str] | None = None  # the reader could not even parse the row: (reason, detail)
    rules: Rules = Rules()  # how the source's answers are read


def access_for(config: SourceConfig, root: str, also: tuple[str, ...] = ()) -> ImageAccess:
    """What the images of a source may be read from: `root` (the recipe's image_root or the
    data's own folder), `also`, and the remote schemes the source allows."""
    return ImageAccess(root, also, tuple(s.lower() for s in config.remote_schemes) if config.allow_remote else ())


def _turns(item: RawItem, config: IngestConfig) -> tuple[list[Turn], int | None]:
    f, rules = item.fields, item.rules
    if f.get("conversations") is not None:
        return conversation_turns(f["conversations"], config.checks, rules, f.get("meta"))
    question, answer, meta = f.get("question"), f.get("answer"), f.get("meta") or {}

    def turn(q, a, extra):
        if f.get("context") and isinstance(q, str):
            q = f"Context: {f['context']}\n{q}"
        return make_turn(q, a, f.get("choices"), config.checks, {**meta, **extra}, rules, f.get("answers"), f.get("answerable"))

    if isinstance(question, (list, tuple)):  # several questions per image, answers alongside (OCR-VQA)
        if not isinstance(answer, (list, tuple)) or len(answer) != len(question):
            got = f"{len(answer)} answers" if isinstance(answer, (list, tuple)) else f"a {type(answer).__name__}"
            raise Problem("turns_mismatch", f"column {rules.question_column!r} lists {len(question)} questions but "
                                            f"column {rules.answer_column!r} holds {got}")
        return [turn(q, a, {"turn": j}) for j, (q, a) in enumerate(zip(question, answer))], None
    return [turn(question, answer, {})], None


def _images(item: RawItem, config: IngestConfig, placeholders: int | None) -> tuple[ImageData, ...]:
    refs = [r for r in item.images if r is not None]
    # a conversation names its images with <image>: as many as there are (none is read as one, first)
    if placeholders is not None and (placeholders not in (0, len(refs)) or (placeholders == 0 and len(refs) > 1)):
        raise Problem("image_placeholder_mismatch", f"{placeholders} <image> placeholders for {len(refs)} images")
    out = []
    for i, ref in enumerate(refs):
        what = "image" if len(refs) == 1 else f"image {i}"
        out.append(normalise(read_image_bytes(ref, item.access, config.images.max_file_bytes, what), config.images, what))
    return tuple(out)


def printable(text: str) -> str:
    """`text` as valid UTF-8: characters that cannot be encoded (lone surrogates) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def to_record(item: RawItem, config: IngestConfig) -> Record:
    """The record of a row, or a rejected record with the reason; never raises. A row
    without an image is `no_image` whatever else is wrong with it."""
    turns: list[Turn] = []
    origin = printable(item.origin)
    try:
        if item.problem:
            raise Problem(*item.problem)
        try:
            turns, placeholders = _turns(item, config)
            check_turn_count(turns, config.checks)
            problem = None
        except Problem as p:
            problem = p
        if not any(r is not None for r in item.images):
            raise Problem("no_image", "the record has no image")
        if problem:
            raise problem
        images = _images(item, config, placeholders)
        return Record(record_id(item.source, images, tuple(turns)), item.source, item.license, images, tuple(turns), origin=origin)
    except Problem as p:
        return _rejected(item, origin, turns, p.reason, p.detail)
    except Exception as e:  # noqa: BLE001 - a bad row must never stop the run; the reason says what broke
        return _rejected(item, origin, turns, "unreadable_record", f"{type(e).__name__}: {str(e)[:200]}")


def _rejected(item: RawItem, origin: str, turns: list[Turn], reason: str, detail: str) -> Record:
    rid = hashlib.sha256(f"{item.source}\0{origin}".encode()).hexdigest()[:20]
    return Record(rid, item.source, item.license, (), tuple(turns), origin=origin).reject(reason, printable(detail))
