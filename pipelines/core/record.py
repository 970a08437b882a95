"""The Record: one image (or several) with its QA turns, and what the stages add to it.

A record moves through the pipeline as an immutable value. Stages call `Record.add`,
which refuses to overwrite a field a previous stage already set: stages add, never remove.
A record that cannot go on ends with `status` "rejected" (a quality decision, by a filter or
a record check) or "failed" (a technical failure: a teacher error, a broken image) and a
`reason`; it is never dropped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from pipelines.core import letters
from pipelines.core.secrets import scrub

# Which fields a source sets; everything else on a Record is written by the stages.
SOURCE_FIELDS = ("id", "source", "license", "images", "turns", "facts", "origin")
STATUSES = ("ok", "rejected", "failed")


@dataclass(frozen=True)
class ImageData:
    """Encoded image bytes, kept as they came when no change was needed (PNG re-encoding
    costs milliseconds per image); `sha256` is of those bytes. `original_size` is the size
    of the image as the source had it, before any scaling; `phash` its 64-bit perceptual
    hash and `thumb` its 8x8 RGB thumbnail (192 bytes; near-duplicate detection finds
    candidates by the hash and confirms them on the thumbnail)."""

    bytes: bytes
    sha256: str
    width: int
    height: int
    format: str  # "PNG", "JPEG", ...
    original_size: tuple[int, int] | None = None
    phash: int | None = None
    thumb: bytes | None = None

    @classmethod
    def from_bytes(cls, data: bytes, width: int, height: int, format: str, original_size: tuple[int, int] | None = None,
                   phash: int | None = None, thumb: bytes | None = None) -> "ImageData":
        return cls(data, hashlib.sha256(data).hexdigest(), width, height, format, original_size or (width, height), phash, thumb)


@dataclass(frozen=True)
class Turn:
    """One question with its gold answer.

    `answer_type` is one of "choice" (the answer is an option letter), "yesno", "number"
    or "text". `meta` holds source-specific data (the synthetic source puts the question
    template and its arguments there, so that ground truth can be recomputed)."""

    question: str
    answer: str
    choices: tuple[str, ...] = ()
    answer_type: str = "text"
    meta: dict = field(default_factory=dict)

    @property
    def answer_text(self) -> str:
        """The gold answer as words: a choice letter becomes its option's text."""
        if self.answer_type == "choice" and self.choices:
            return self.choices[letters.index(self.answer)]
        return self.answer

    @property
    def answer_meaning(self) -> str:
        """What the gold says, for telling answers apart (dedup, decontamination): a
        multiple-choice letter as its option's text (two golds "B" may mean "yellow" and
        "blue"; shuffled options of one question mean the same), the letter itself where
        it names no option."""
        try:
            return self.answer_text
        except (ValueError, IndexError):
            return self.answer

    def option_lines(self) -> list[str]:
        """The options as the prompts show them: ["A. red", "B. blue"]."""
        return letters.lettered(self.choices)


MAX_TOKEN_COUNT = 1 << 31  # more tokens than any context holds: a larger count is not a count
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def repaired(text: str) -> str:
    """`text` with every character that UTF-8 cannot encode (a lone surrogate, as a JSON
    escape like "\\udcff" can make) replaced by U+FFFD, so it can be sent, hashed and stored."""
    return _SURROGATE.sub("\ufffd", text)


@dataclass(frozen=True)
class TeacherOutput:
    """One completion of a teacher, as kept on the record. Whatever backend or cache entry
    it came from, its texts are valid Unicode (repaired) and its token counts are integers
    in [0, MAX_TOKEN_COUNT] (else ValueError): a reply cannot carry what breaks a later stage,
    a request or a counter."""

    text: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    thinking: str = ""  # the reasoning model's thinking, kept apart from `text`

    def __post_init__(self):
        for name in ("text", "finish_reason", "thinking"):
            value = getattr(self, name)
            if not isinstance(value, str):
                raise ValueError(f"{name} is a {type(value).__name__}, not text")
            if _SURROGATE.search(value):
                object.__setattr__(self, name, repaired(value))
        for name in ("prompt_tokens", "completion_tokens"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKEN_COUNT:
                raise ValueError(f"{name} is {str(value)[:40]!r}, not a token count")


@dataclass(frozen=True)
class ThinkSample:
    """One reasoning trace for one turn: the teacher's output and the answer parsed from
    its last `Answer:` line (None when it has none)."""

    output: TeacherOutput
    answer: str | None


@dataclass(frozen=True)
class Judgement:
    """The verify stage's verdict on one claim: a statement ("is it in the extraction / the
    image?") or a sentence of the extraction ("do the other samples / the image back it?")."""

    kind: str  # "statement" or "sentence"
    claim: str
    verdict: str  # "supported", "contradicted", "not stated", or "unparsed"
    against: str = "text"  # what the judge read: "text" (the extraction / the other samples) or "image"


@dataclass(frozen=True)
class Verdict:
    """A filter's decision on one record: keep it or not, why, a score, and a detail that
    names what was wrong (the statement not covered, the output cut short)."""

    filter: str
    keep: bool
    reason: str | None = None
    score: float | None = None
    detail: str | None = None

    @classmethod
    def of(cls, filter_function, keep: bool, reason: str | None = None, score: float | None = None,
           detail: str | None = None) -> "Verdict":
        """A verdict of `filter_function`, whose name is the filter's name (in recipes, funnels, `scores`)."""
        return cls(filter_function.__name__, keep, reason, score, detail)


@dataclass(frozen=True)
class StageProvenance:
    """How one stage produced its fields: enough to reproduce the teacher call."""

    template: str  # template id, e.g. "extraction/v1"
    prompt_sha256: str  # hash of the rendered prompt(s) of this record
    inputs: tuple[str, ...]  # the template's variables: what the teacher was shown
    backend: str
    model: str
    revision: str
    sampling: dict


@dataclass(frozen=True)
class Record:
    id: str
    source: str
    license: str
    images: tuple[ImageData, ...]
    turns: tuple[Turn, ...]
    facts: dict | None = None  # ground truth, only for sources that know it (synthetic)
    origin: str | None = None  # where in the source it came from: "file.json#12", "row 5", ...

    # Written by the stages.
    statements: tuple[str, ...] | None = None
    focus: str | None = None
    extractions: tuple[TeacherOutput, ...] | None = None  # N samples; [0] is published
    reasoning: tuple[tuple[ThinkSample, ...], ...] | None = None  # per turn, M samples
    judgements: tuple[Judgement, ...] | None = None  # the verify stage's, when it runs
    provenance: dict = field(default_factory=dict)  # stage name -> StageProvenance
    verdicts: tuple[Verdict, ...] = ()
    injected: tuple[dict, ...] = ()  # oracle only: the mistakes it made on purpose
    status: str = "ok"
    reason: str | None = None
    detail: str | None = None  # a human-readable explanation of `reason`, secrets scrubbed

    @property
    def extraction(self) -> str | None:
        return self.extractions[0].text if self.extractions else None

    def add(self, **fields: Any) -> "Record":
        """A copy with new fields set. Refuses to overwrite what a stage already wrote or to
        touch what the source set; `provenance`, `verdicts` and `injected` are appended to."""
        changes: dict[str, Any] = {}
        for name, value in fields.items():
            if name in SOURCE_FIELDS:
                raise ValueError(f"stages may not change the source field {name!r}")
            current = getattr(self, name)
            if name == "provenance":
                clash = set(current) & set(value)
                if clash:
                    raise ValueError(f"provenance for {sorted(clash)} is already recorded")
                changes[name] = {**current, **value}
            elif name in ("verdicts", "injected"):
                changes[name] = tuple(current) + tuple(value)
            elif name in ("status", "reason", "detail"):
                raise ValueError("use Record.reject or Record.fail to end a record")
            elif current is not None:
                raise ValueError(f"field {name!r} is already set; stages add, never remove")
            else:
                changes[name] = value
        return dataclasses.replace(self, **changes)

    def reject(self, reason: str, detail: str | None = None) -> "Record":
        return self._end("rejected", reason, detail)

    def fail(self, reason: str, detail: str | None = None) -> "Record":
        return self._end("failed", reason, detail)

    def _end(self, status: str, reason: str, detail: str | None) -> "Record":
        if self.status != "ok":
            raise ValueError(f"record {self.id} already ended as {self.status}: {self.reason}")
        return dataclasses.replace(self, status=status, reason=reason, detail=scrub(detail))


def record_id(source: str, images: tuple[ImageData, ...], turns: tuple[Turn, ...]) -> str:
    """Stable id: the hash of the source name, the image bytes and the QA turns, so the
    same content gets the same id in every run and on every worker."""
    h = hashlib.sha256(source.encode())
    for image in images:
        h.update(bytes.fromhex(image.sha256))
    qa = [[t.question, t.answer, list(t.choices)] for t in turns]
    h.update(json.dumps(qa, ensure_ascii=False, sort_keys=True).encode())
    return h.hexdigest()[:20]


def to_jsonable(value: Any) -> Any:
    """Dataclasses, tuples and bytes turned into JSON-ready values (bytes are dropped to
    their length; images are published through their own column)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return value
