"""Deduplication of records before any teacher sees them.

- exact: the same image bytes and the same normalised questions;
- near: perceptual image hashes within `max_hamming` bits, confirmed on pixels (8x8 RGB
  thumbnails within `max_pixel_diff` on average: every flat image hashes alike, a grey one
  and a red one do not look alike), *and* questions that fuzzy-match (rapidfuzz
  token_sort_ratio >= `question_similarity`) *and* (with `same_answers`) the same
  normalised answers (a multiple-choice answer as its option's text, never its letter): a
  re-encoded or resized copy teaching the same thing. Two photos of
  different signs can hash alike; their different answers keep them apart.
- synthetic scenes know their ground truth: they are duplicates when their facts and
  questions are the same, whatever the pixels (near-matching does not apply to them).

Near-duplicate candidates are found by banding: the 64-bit hash is cut into max_hamming + 1
bands, and two hashes within max_hamming bits agree on at least one band exactly
(pigeonhole), so only records sharing a band are compared. Pairs are joined into groups
(union-find); each group keeps its smallest id, which does not depend on the order records
arrive in, and every other member is rejected with a reason that names the record that goes
on to the teacher (what then becomes of that one is its own row's story). Exact copies are
removed first; when the record an exact copy names is itself a near duplicate, the detail
says so and names the one that goes on.

Only small `Signature`s are grouped. In a run they come from a second read of the sources,
and the records themselves pass through untouched but for the mark (see `Deduplicate`): a
record's fate depends on every other record, and reading the sources again costs less than
holding (or shuffling) every record with its image until the last one is read. The second
read sketches synthetic scenes (facts and questions, no pixels, ~20x cheaper than drawing)
and draws only those that turn out to have copies.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from typing import Sequence

import apache_beam as beam
from rapidfuzz import fuzz

from pipelines.config.source_config import DedupConfig, SourceConfig
from pipelines.core.answers import normalise_text
from pipelines.core.images import pixel_difference
from pipelines.core.record import Record
from pipelines.observe import funnel
from pipelines.sources.synthetic import make_record, sketch_record

NEIGHBOURS = 50  # in a bucket over max_bucket, how many question-order neighbours to compare


def questions_key(record: Record) -> str:
    return "\n".join(normalise_text(t.question) for t in record.turns)


def answers_key(record: Record) -> str:
    return "\n".join(normalise_text(t.answer_meaning) for t in record.turns)


def exact_key(record: Record) -> str:
    """Image bytes + questions; for a source that knows its ground truth (synthetic), the
    scene's facts stand for the image: the same scene drawn twice is the same record."""
    h = hashlib.sha256()
    if record.facts is not None:
        h.update(json.dumps(record.facts, sort_keys=True, default=str).encode())
    else:
        for image in record.images:
            h.update(bytes.fromhex(image.sha256))
    h.update(questions_key(record).encode())
    return h.hexdigest()


def _name(record: Record) -> str:
    return f"{record.id} ({record.origin})" if record.origin else record.id


@dataclass(frozen=True)
class Signature:
    """What deduplication needs of a record: small, so that only signatures are grouped and
    held, never records with their images. `handle` (id, origin) tells apart two rows with
    the same content (and so the same id). A synthetic scene's signature comes from a sketch
    (`sketch_signature`): its id, a hash of image bytes not drawn, is learnt only if the
    scene turns out to have copies (`scene` says which scene to draw then)."""

    handle: tuple[str, str]
    name: str
    exact: str
    phash: int | None  # None: not near-matched (no image, or a ground-truth source)
    thumb: bytes | None  # 8x8 RGB: confirms a near match on pixels
    questions: str
    answers: str
    scene: tuple[int, int] | None = None  # (source number, scene number) of a sketch


def signature(record: Record) -> Signature:
    image = record.images[0] if record.images and record.facts is None else None
    ph, thumb = (image.phash, image.thumb) if image is not None else (None, None)
    return Signature((record.id, record.origin), _name(record), exact_key(record), ph, thumb, questions_key(record), answers_key(record))


def sketch_signature(source_number: int, index: int, config: SourceConfig) -> Signature:
    """Scene `index` of synthetic source number `source_number`, without drawing its pixels."""
    sketch = sketch_record(index, config.synthetic, config.name, config.license)
    return replace(signature(sketch), scene=(source_number, index))


def _drawn(sig: Signature, sources: Sequence[SourceConfig]) -> Signature:
    """A sketch's signature completed with the id of the drawn record (others as they are)."""
    if sig.scene is None:
        return sig
    i, index = sig.scene
    return signature(make_record(index, sources[i].synthetic, sources[i].name, sources[i].license))


def _keep_first(group, sources: Sequence[SourceConfig] = ()):
    _, sigs = group
    sigs = list(sigs)
    if len(sigs) > 1:  # copies: the kept one is the smallest (id, origin), so ids are needed
        sigs = [_drawn(s, sources) for s in sigs]
    ordered = sorted(sigs, key=lambda s: s.handle)
    yield ordered[0]
    for s in ordered[1:]:
        yield beam.pvalue.TaggedOutput("copies", (s.handle, ordered[0]))


def _bands(sig: Signature, bands: int):
    if sig.phash is None:  # ground-truth sources are compared by facts (exact_key)
        return
    width = -(-64 // bands)
    for b in range(bands):
        yield (b, (sig.phash >> (b * width)) & ((1 << width) - 1)), sig


def _similar_pairs(group, config: DedupConfig):
    _, sigs = group
    sigs = sorted(set(sigs), key=lambda s: (s.questions, s.handle))
    window = len(sigs) if len(sigs) <= config.max_bucket else NEIGHBOURS
    if len(sigs) > config.max_bucket:
        funnel.counter(funnel.DEDUP, funnel.LARGE_BUCKETS).inc()
    for i, a in enumerate(sigs):
        for b in sigs[i + 1: i + 1 + window]:
            if a.handle != b.handle and bin(a.phash ^ b.phash).count("1") <= config.max_hamming and \
                    (not config.same_answers or a.answers == b.answers) and _look_alike(a, b, config) and \
                    fuzz.token_sort_ratio(a.questions, b.questions) >= config.question_similarity:
                yield (a, b) if a.handle < b.handle else (b, a)


def groups_of(pairs) -> dict:
    """{duplicate handle: (kept handle, kept name)} from similar pairs of Signatures
    (a pair may come more than once, from several shared bands): connected groups, each
    kept by its smallest handle."""
    parent: dict = {}
    names: dict = {}

    def find(x):
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        names[a.handle], names[b.handle] = a.name, b.name
        ra, rb = find(a.handle), find(b.handle)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: (find(x), names[find(x)]) for x in list(parent) if find(x) != x}


def _look_alike(a: Signature, b: Signature, config: DedupConfig) -> bool:
    return a.thumb is None or b.thumb is None or pixel_difference(a.thumb, b.thumb) <= config.max_pixel_diff


def _goes_on(name: str) -> str:
    return f"only {name} goes on to the teacher"


def _near_marks(groups: dict):
    for handle, (_, kept_name) in groups.items():
        yield handle, ("near_duplicate", f"near-duplicate image and questions of {kept_name}; {_goes_on(kept_name)}")


def _copy_mark(copy, groups: dict):
    """An exact copy's mark, naming what became of the record it copies."""
    handle, original = copy
    detail = f"a copy of {original.name} (same image bytes and questions)"
    if original.handle in groups:
        _, kept_name = groups[original.handle]
        return handle, ("duplicate", f"{detail}, which is itself a near duplicate of {kept_name}; {_goes_on(kept_name)}")
    return handle, ("duplicate", f"{detail}; {_goes_on(original.name)}")


class DuplicateMarks(beam.PTransform):
    """Signatures of the usable records in; ((id, origin), (reason, detail)) out for every
    record that is a copy of another, the detail naming the record kept. `sources` are
    those that sketched signatures come from. The config turns on exact or near matching,
    or both (`Deduplicate` does nothing with neither)."""

    def __init__(self, config: DedupConfig, sources: Sequence[SourceConfig] = ()):
        super().__init__()
        self._config, self._sources = config, tuple(sources)

    def expand(self, sigs):
        c = self._config
        copies = None
        if c.exact:
            split = (sigs
                     | "ExactKey" >> beam.Map(lambda s: (s.exact, s))
                     | "SameContent" >> beam.GroupByKey()
                     | "KeepFirst" >> beam.FlatMap(_keep_first, self._sources).with_outputs("copies", main="kept"))
            sigs, copies = split.kept, split.copies
        if not c.near:
            return copies | "CopyMarks" >> beam.Map(_copy_mark, {})
        groups = (sigs
                  | "Bands" >> beam.FlatMap(_bands, c.max_hamming + 1)
                  | "SameBand" >> beam.GroupByKey()
                  | "SimilarPairs" >> beam.FlatMap(_similar_pairs, c)
                  | "Groups" >> beam.CombineGlobally(beam.combiners.ToListCombineFn())
                  | "Join" >> beam.Map(groups_of))
        near = groups | "NearMarks" >> beam.FlatMap(_near_marks)
        if copies is None:
            return near
        exact = copies | "CopyMarks" >> beam.Map(_copy_mark, beam.pvalue.AsSingleton(groups))
        return (exact, near) | "AllMarks" >> beam.Flatten()


def duplicate_marks(sigs, config: DedupConfig) -> dict:
    """{(id, origin): (reason, detail)} for every copy among `sigs`, as `DuplicateMarks`
    finds them, in plain Python: for a handful of records (`inspect`'s preview)."""
    from collections import defaultdict

    copies, groups = [], {}
    if config.exact:
        same = defaultdict(list)
        for s in sigs:
            same[s.exact].append(s)
        sigs = []
        for group in same.items():
            for out in _keep_first(group):
                (copies.append(out.value) if isinstance(out, beam.pvalue.TaggedOutput) else sigs.append(out))
    if config.near:
        bands = defaultdict(list)
        for s in sigs:
            for band, sig in _bands(s, config.max_hamming + 1):
                bands[band].append(sig)
        groups = groups_of([pair for group in bands.items() for pair in _similar_pairs(group, config)])
    marks = dict(_near_marks(groups)) if config.near else {}
    marks.update(_copy_mark(c, groups) for c in copies)
    return marks


def _mark(record: Record, marks: dict) -> Record:
    found = marks.get((record.id, record.origin)) if record.status == "ok" else None
    return record.reject(*found) if found else record


class Deduplicate(beam.PTransform):
    """Records in, the same records out, copies ended as rejected with a reason naming the
    record kept. With `keys_from` (the Signatures of a second read of the same sources,
    `ReadSources(..., signatures=True)`, whose `sources` they are) the copies are found there
    and the records themselves pass straight through: nothing waits on the whole input, so a
    run streams; without it the signatures are taken from the records. Marks are looked up
    by (id, origin): both reads must see the same sources (a file rewritten during the run
    would make its copies go unmarked)."""

    def __init__(self, config: DedupConfig, keys_from=None, sources: Sequence[SourceConfig] = ()):
        super().__init__()
        self._config, self._keys_from, self._sources = config, keys_from, sources

    def expand(self, records):
        if not (self._config.exact or self._config.near):
            return records
        sigs = self._keys_from
        if sigs is None:
            sigs = records | "Usable" >> beam.Filter(lambda r: r.status == "ok") | "Signatures" >> beam.Map(signature)
        marks = sigs | "Marks" >> DuplicateMarks(self._config, self._sources)
        return records | "MarkCopies" >> beam.Map(_mark, beam.pvalue.AsDict(marks))
