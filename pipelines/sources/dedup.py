"""Deduplication of records before any teacher sees them.

- exact: the same image bytes and the same normalised questions;
- near: perceptual image hashes within `max_hamming` bits *and* questions that fuzzy-match
  (rapidfuzz token_sort_ratio >= `question_similarity`) *and* (with `same_answers`) the same
  normalised answers: a re-encoded or resized copy teaching the same thing. Two photos of
  different signs can hash alike; their different answers keep them apart.
- synthetic scenes know their ground truth: they are duplicates when their facts and
  questions are the same, whatever the pixels (near-matching does not apply to them).

Near-duplicate candidates are found by banding: the 64-bit hash is cut into max_hamming + 1
bands, and two hashes within max_hamming bits agree on at least one band exactly
(pigeonhole), so only records sharing a band are compared. Pairs are joined into groups
(union-find); each group keeps its smallest id, which does not depend on the order records
arrive in, and every other member is rejected with a reason that names the kept record.
"""

from __future__ import annotations

import hashlib
import json

import apache_beam as beam
from rapidfuzz import fuzz

from filters.answers import normalise_text
from pipelines.record import Record
from pipelines.source_config import DedupConfig

NEIGHBOURS = 50  # in a bucket over max_bucket, how many question-order neighbours to compare


def questions_key(record: Record) -> str:
    return "\n".join(normalise_text(t.question) for t in record.turns)


def answers_key(record: Record) -> str:
    return "\n".join(normalise_text(t.answer) for t in record.turns)


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


def _keep_first(group, tag: str):
    _, records = group
    ordered = sorted(records, key=lambda r: r.id)
    yield ordered[0]
    for r in ordered[1:]:
        yield beam.pvalue.TaggedOutput(tag, r.reject("duplicate", f"same image bytes and question as {_name(ordered[0])}, which is kept"))


def _bands(record: Record, bands: int):
    ph = record.images[0].phash if record.images else None
    if ph is None or record.facts is not None:  # ground-truth sources are compared by facts (exact_key)
        return
    sig = (record.id, ph, questions_key(record), _name(record), answers_key(record))
    width = -(-64 // bands)
    for b in range(bands):
        yield (b, (ph >> (b * width)) & ((1 << width) - 1)), sig


def _similar_pairs(group, config: DedupConfig):
    _, sigs = group
    sigs = sorted(set(sigs), key=lambda s: s[2])
    window = len(sigs) if len(sigs) <= config.max_bucket else NEIGHBOURS
    if len(sigs) > config.max_bucket:
        beam.metrics.Metrics.counter("extract_think.dedup", "large_buckets").inc()
    for i, a in enumerate(sigs):
        for b in sigs[i + 1: i + 1 + window]:
            if a[0] != b[0] and bin(a[1] ^ b[1]).count("1") <= config.max_hamming and \
                    (not config.same_answers or a[4] == b[4]) and \
                    fuzz.token_sort_ratio(a[2], b[2]) >= config.question_similarity:
                yield (a, b) if a[0] < b[0] else (b, a)


def groups_of(pairs) -> dict[str, tuple[str, str]]:
    """{duplicate id: (kept id, kept name)} from similar pairs: connected groups, each
    kept by its smallest id."""
    parent: dict[str, str] = {}
    names: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in pairs:
        names[a[0]], names[b[0]] = a[3], b[3]
        ra, rb = find(a[0]), find(b[0])
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {x: (find(x), names[find(x)]) for x in list(parent) if find(x) != x}


def _mark_near(record: Record, duplicates: dict):
    if record.id in duplicates:
        _, kept_name = duplicates[record.id]
        yield beam.pvalue.TaggedOutput("dup", record.reject(
            "near_duplicate", f"near-duplicate image and question of {kept_name}, which is kept"))
    else:
        yield record


class Deduplicate(beam.PTransform):
    """Records in; {"kept": ..., "dup": ...} out, the duplicates ended as rejected with a
    reason that names the record kept."""

    def __init__(self, config: DedupConfig):
        super().__init__()
        self._config = config

    def expand(self, records):
        c = self._config
        dups = []
        if c.exact:
            split = (records
                     | "ExactKey" >> beam.Map(lambda r: (exact_key(r), r))
                     | "SameContent" >> beam.GroupByKey()
                     | "KeepFirst" >> beam.FlatMap(_keep_first, "dup").with_outputs("dup", main="kept"))
            records, dups = split.kept, [split.dup]
        if c.near:
            pairs = (records
                     | "Bands" >> beam.FlatMap(_bands, c.max_hamming + 1)
                     | "SameBand" >> beam.GroupByKey()
                     | "SimilarPairs" >> beam.FlatMap(_similar_pairs, c)
                     | "UniquePairs" >> beam.Distinct())
            duplicates = pairs | "Groups" >> beam.CombineGlobally(beam.combiners.ToListCombineFn()) | beam.Map(groups_of)
            split = records | "MarkNear" >> beam.FlatMap(_mark_near, beam.pvalue.AsSingleton(duplicates)).with_outputs("dup", main="kept")
            records, dups = split.kept, dups + [split.dup]
        dup = dups | "AllDuplicates" >> beam.Flatten() if dups else records | "NoDuplicates" >> beam.Filter(lambda r: False)
        return {"kept": records, "dup": dup}
