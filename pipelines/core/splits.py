"""The one rule that splits records into `train` and `test`: a stable hash of the record's id.

The publish writes every config's rows of a record into the record's split, and train_min
holds out the same records (the `test` split, and by the same hash where a dataset has no
split of its own): the two never disagree on what was held out, on any run or resume.
"""

from __future__ import annotations

import hashlib

TRAIN, TEST = "train", "test"
SPLITS = (TRAIN, TEST)


def in_test(record_id: str, fraction: float) -> bool:
    """Whether a record is held out at `fraction` (0 holds out nothing). A record in the
    test split at one fraction stays there at every larger one."""
    return int(hashlib.sha256(record_id.encode()).hexdigest()[:8], 16) / 16**8 < fraction


def record_key(row: dict) -> str:
    """The record a published row belongs to: `record_id` for a reasoning row (one per
    question of the record), else `id`."""
    return row.get("record_id") or row["id"]


def split_of(row: dict, fraction: float) -> str:
    return TEST if in_test(record_key(row), fraction) else TRAIN
