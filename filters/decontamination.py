"""Decontamination: reject training records that copy an item of an evaluation set.

The recipe names its evaluation sets under `eval_sets` (any source kind: a Hub/parquet set,
LLaVA JSON, an imagefolder, held-out synthetic scenes); they are read with the same image
normalisation as the training sources, and each becomes a light `EvalEntry` (perceptual hash,
normalised questions and answers; for synthetic scenes the ground truth instead of pixels).

A record is contaminated by an entry when, by `match`:
- "image": its image is within `max_hamming` bits of the entry's (64-bit pHash) and their
  32x32 grey thumbnails differ nowhere by more than `max_pixel_diff` (0-255). Measured on
  synthetic scenes: a copy resized to 3/4 or 1/2 and saved as JPEG (quality 75 or 50)
  differs by at most 19; two different scenes of one template that hash alike (a clock with
  its hand elsewhere, a beaker with one particle more) by 17 or more in 99% of pairs, 30 or
  more in 95%. Sharp-edged graphics rescaled hard can differ by more than the default
  allows: raise it, or set 255 to rely on the hash alone. Synthetic scenes on both sides:
  the same facts;
- "question": one of its questions fuzzy-matches one of the entry's (rapidfuzz
  token_sort_ratio >= `question_similarity`, questions of at least `min_question_words` words);
- "both" (default): image and question, on the same turn pair.
With `same_answers` (default), the matched question pair must also have the same answer:
two receipts printed from one template hash alike and are asked the same question, but
their different totals say they are different images. A multiple-choice answer is compared
as its option's text, never its letter (`Turn.answer_meaning`). Image candidates are found by
banding the hash, as in deduplication, so a record is compared with few entries.

`decontaminate` runs on source fields only, so the pipeline applies it before any teacher
call: a contaminated record costs nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass

import numpy as np
from PIL import Image
from rapidfuzz import fuzz, process

from pipelines.core.answers import normalise_text
from pipelines.core.images import phash
from pipelines.core.record import Record, Verdict

MATCHES = ("both", "image", "question")
THUMB = 32


@dataclass(frozen=True)
class EvalEntry:
    source: str
    id: str
    origin: str | None
    phash: int | None
    thumb: bytes | None  # 32x32 grey thumbnail: confirms a hash match
    scene: str | None  # synthetic scenes: a hash of their family and facts
    turns: tuple[tuple[str, str], ...]  # normalised (question, answer)


def scene_key(record: Record) -> str | None:
    if not record.facts:
        return None
    key = json.dumps([record.facts.get("family"), record.facts.get("values")], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:24]


def record_phash(record: Record) -> int | None:
    if not record.images:
        return None
    image = record.images[0]
    if image.phash is not None:
        return image.phash  # else a synthetic scene, which skips hashing at the source
    with Image.open(io.BytesIO(image.bytes)) as im:
        return phash(im)


def grey_thumbnail(record: Record) -> np.ndarray | None:
    if not record.images:
        return None
    with Image.open(io.BytesIO(record.images[0].bytes)) as im:
        return np.asarray(im.convert("L").resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.uint8)


def eval_entry(record: Record) -> EvalEntry:
    turns = tuple((normalise_text(t.question), normalise_text(t.answer_meaning)) for t in record.turns)
    scene = scene_key(record)
    if scene:
        return EvalEntry(record.source, record.id, record.origin, None, None, scene, turns)
    thumb = grey_thumbnail(record)
    return EvalEntry(record.source, record.id, record.origin, record_phash(record), None if thumb is None else thumb.tobytes(), scene, turns)


class EvalIndex:
    def __init__(self, entries, max_hamming: int = 4, max_pixel_diff: float = 24.0):
        self.entries = list(entries)
        self.max_hamming = int(max_hamming)
        self.max_pixel_diff = max_pixel_diff
        self.width = -(-64 // (self.max_hamming + 1))
        self.bands: dict[tuple[int, int], list[int]] = {}
        self.scenes: dict[str, list[int]] = {}
        self.questions: list[str] = []
        self.question_owner: list[int] = []
        for i, e in enumerate(self.entries):
            if e.scene:
                self.scenes.setdefault(e.scene, []).append(i)
            elif e.phash is not None:
                for band in self._bands(e.phash):
                    self.bands.setdefault(band, []).append(i)
            for q, _ in e.turns:
                self.questions.append(q)
                self.question_owner.append(i)

    def _bands(self, ph: int):
        mask = (1 << self.width) - 1
        return [(b, (ph >> (b * self.width)) & mask) for b in range(self.max_hamming + 1)]

    def image_matches(self, record: Record) -> dict[int, str]:
        """Entries whose image is the record's: index -> how it matched. A synthetic scene is
        matched to eval scenes by its facts and to any other eval image by its pixels."""
        scene = scene_key(record)
        out = {i: "the same scene" for i in self.scenes.get(scene, ())} if scene else {}
        ph = record_phash(record) if self.bands else None
        if ph is None:
            return out
        near = {}
        for band in self._bands(ph):
            for i in self.bands.get(band, ()):
                d = bin(ph ^ self.entries[i].phash).count("1")
                if d <= self.max_hamming:
                    near[i] = d
        thumb = grey_thumbnail(record).astype(np.float32) if near else None
        for i, d in near.items():
            # a 64-bit hash cannot tell two charts or clocks of one template apart; pixels can
            other = np.frombuffer(self.entries[i].thumb, dtype=np.uint8).reshape(THUMB, THUMB)
            diff = float(np.abs(thumb - other).max())
            if diff <= self.max_pixel_diff:
                out[i] = f"image within {d} bits (pixels within {diff:.0f})"
        return out

    def question_matches(self, question: str, similarity: float) -> set[int]:
        found = process.extract(question, self.questions, scorer=fuzz.token_sort_ratio, score_cutoff=similarity, limit=None)
        return {self.question_owner[j] for _, _, j in found}


def _turn_pair(record: Record, entry: EvalEntry, similarity: float, same_answers: bool, min_words: int):
    for t in record.turns:
        q, a = normalise_text(t.question), normalise_text(t.answer_meaning)
        if len(q.split()) < min_words:
            continue
        for eq, ea in entry.turns:
            score = fuzz.token_sort_ratio(q, eq)
            if score >= similarity and (not same_answers or a == ea):
                return t.question, score
    return None


def decontaminate(record: Record, index: EvalIndex, match: str = "both", question_similarity: float = 90.0,
                  same_answers: bool = True, min_question_words: int = 3) -> Verdict:
    if match == "question":
        asked = [normalise_text(t.question) for t in record.turns]
        owners = {i for q in asked if len(q.split()) >= min_question_words for i in index.question_matches(q, question_similarity)}
        candidates = {i: None for i in sorted(owners)}
    else:
        candidates = index.image_matches(record)
    for i, how in sorted(candidates.items()):
        entry = index.entries[i]
        said = [how] if how else []
        if match != "image":
            pair = _turn_pair(record, entry, question_similarity, same_answers, min_question_words if match == "question" else 0)
            if pair is None:
                continue
            said.append(f"question {pair[0]!r} ({pair[1]:.0f}% alike{', same answer' if same_answers else ''})")
        return Verdict.of(decontaminate, False, "eval_contamination", 0.0,
                       f"{' and '.join(said)} as {entry.source} {entry.id} ({entry.origin})")
    return Verdict.of(decontaminate, True, None, 1.0)
