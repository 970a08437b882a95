"""Reviewers' labels of a published dataset, and the sample they label.

Labels live in `OUT/reviews/<name>.jsonl`, one JSON object a line, appended as they are
given (one `write` of a whole line under a lock, flushed and synced, so a crash, a reload or
two tabs lose nothing):

    {"record": ID, "label": "good" | "bad", "reviewer": NAME,
     "unsupported": {"sentence": [i, ...], "statement": [i, ...]}, "time": UNIX_SECONDS}

The latest line of a reviewer for a record wins. A record's label over reviewers is their
majority (a tie: no label). `unsupported` lists the extraction's sentences (numbered as
`pipelines.support.text.sentences` splits them) and the statements the reviewer marked as
not supported; the others of a labelled record count as supported.

The sample is stratified: kept records, and rejected records per filter and reason, an
equal share each (a stratum with fewer records gives its share to the others), in an order
fixed by a hash of the seed and the record id.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

from pipelines.core.rates import rate
from pipelines.publishing.report import iter_rows

REVIEWS = "reviews"
LABELS = ("good", "bad")
UNITS = ("sentence", "statement")
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_LOCK = threading.Lock()


class LabelError(ValueError):
    """A label that cannot be stored (unknown record, wrong value)."""


def labels_path(out: str | Path, name: str) -> Path:
    if not NAME.fullmatch(name):
        raise LabelError(f"a review name is 1-64 letters, digits, '_' or '-', got {name!r}")
    return Path(out) / REVIEWS / f"{name}.jsonl"


def append_label(path: Path, entry: dict) -> None:
    """One line, whole or not at all (a single write of the line, under a thread lock and a
    file lock, then fsync)."""
    line = (json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    with _LOCK:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)


def label_entry(record: str, label: str, reviewer: str, unsupported: dict | None = None) -> dict:
    """A checked label line."""
    if label not in LABELS:
        raise LabelError(f"label must be one of {LABELS}, got {label!r}")
    marks = {}
    for unit, indices in (unsupported or {}).items():
        if unit not in UNITS or not isinstance(indices, list) or not all(isinstance(i, int) and 0 <= i < 1000 for i in indices):
            raise LabelError(f"unsupported: {{{'|'.join(UNITS)}: [indices]}}, got {unit!r}: {indices!r}")
        marks[unit] = sorted(set(indices))
    return {"record": record, "label": label, "reviewer": reviewer, "unsupported": marks, "time": round(time.time(), 3)}


def read_lines(out: str | Path, name: str | None = None) -> list[dict]:
    """Every well-formed label line under OUT/reviews (of reviews/`name`.jsonl only, when
    given), in file then line order (a line cut by a crash, or not a label, is skipped)."""
    lines = []
    for path in [labels_path(out, name)] if name else sorted((Path(out) / REVIEWS).glob("*.jsonl")):
        if not path.is_file():
            continue
        for text in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(text)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("label") in LABELS and isinstance(entry.get("record"), str):
                lines.append(entry)
    return lines


def latest(lines: list[dict]) -> dict[tuple[str, str], dict]:
    """(reviewer, record) -> the reviewer's latest line for the record."""
    out = {}
    for entry in lines:
        out[(str(entry.get("reviewer", "")), entry["record"])] = entry
    return out


def record_labels(out: str | Path) -> tuple[dict[str, dict], int]:
    """(record id -> {"label", "unsupported": {unit: set of indices}, "reviewers": their names}, reviewers):
    each record's majority label over its reviewers (ties left out); a unit is unsupported
    when a reviewer who gave the majority label marked it."""
    by_record = defaultdict(list)
    for (_, record), entry in latest(read_lines(out)).items():
        by_record[record].append(entry)
    labels, reviewers = {}, set()
    for record, entries in by_record.items():
        reviewers.update(str(e.get("reviewer", "")) for e in entries)
        votes = Counter(e["label"] for e in entries).most_common()
        if len(votes) > 1 and votes[0][1] == votes[1][1]:
            continue
        label = votes[0][0]
        marks = {unit: set() for unit in UNITS}
        for e in entries:
            if e["label"] == label:
                for unit, indices in (e.get("unsupported") or {}).items():
                    if unit in marks and isinstance(indices, list):
                        marks[unit].update(i for i in indices if isinstance(i, int))
        labels[record] = {"label": label, "unsupported": marks, "reviewers": {str(e.get("reviewer", "")) for e in entries}}
    return labels, len(reviewers)


def rejecting_filter(row: dict) -> str | None:
    """The filter that rejected a row of the rejected config: filters run in the order of the
    `scores` struct and the first that rejects ends the record, so it is the last one with a
    score. None for a failed record or a rejection at the source (no filter ran)."""
    if row.get("status") != "rejected":
        return None
    return next((f for f, s in reversed(list((row.get("scores") or {}).items())) if s is not None), None)


def stratum(row: dict) -> str:
    if row.get("status") is None:
        return "kept"
    return f"{row['status']}: {rejecting_filter(row) or '-'}: {row.get('reason')}"


def _order(seed: int, record: str) -> str:
    return hashlib.sha256(f"{seed}:{record}".encode()).hexdigest()


def sample_ids(out: str | Path, size: int, seed: int = 0) -> list[tuple[str, str]]:
    """(stratum, record id) of a stratified sample of kept and rejected records (not failed
    ones: a teacher error says nothing about the filters)."""
    strata = defaultdict(list)
    for config, columns in (("extraction", ["id"]), ("rejected", ["id", "status", "reason", "detail", "scores"])):
        for row in iter_rows(out, config, columns):
            if row.get("status") != "failed":
                strata[stratum(row)].append(row["id"])
    queues = {name: sorted(ids, key=lambda i: _order(seed, i)) for name, ids in sorted(strata.items())}
    chosen = []
    while len(chosen) < size and any(queues.values()):
        for name, queue in queues.items():
            if queue and len(chosen) < size:
                chosen.append((name, queue.pop(0)))
    return chosen


def audit(out: str | Path) -> dict | None:
    """What the labels under OUT/reviews say of the dataset in OUT, for its card: the labelled
    records that are in it, their reviewers, and the kept ones' precision; None without labels."""
    labels, _ = record_labels(out)
    if not labels:
        return None
    kept = [r["id"] for r in iter_rows(out, "extraction", ["id"]) if r["id"] in labels]
    present = kept + [r["id"] for r in iter_rows(out, "rejected", ["id"]) if r["id"] in labels]
    if not present:
        return None
    reviewers = set().union(*(labels[i]["reviewers"] for i in present))
    return {"records": len(present), "reviewers": len(reviewers), "kept": rate(sum(labels[i]["label"] == "good" for i in kept), len(kept))}


def carry(old: str | Path, new: str | Path) -> bool:
    """The labels of the output a run replaces go with it into the new one (record ids are
    content hashes: a label still names its record); whether there were any."""
    import shutil

    source = Path(old) / REVIEWS
    if not source.is_dir() or not any(source.glob("*.jsonl")):
        return False
    shutil.copytree(source, Path(new) / REVIEWS, dirs_exist_ok=True)
    return True
