"""What training must know of every example before it starts, without holding any example:
per row of the published config, its encoded length (0: its prompt alone does not fit
`max_length`, so it is skipped), its target tokens, whether its images' attention masks are
all ones, and whether it is held out for evaluation (the dataset's `test` split, and a hash
of the record id: `held_out_rows`).

The lengths come from encoding every row once, in worker processes, keeping four numbers and
dropping the pixels at once: about 10 bytes a row (4 MB at the paper's 382K). They are
cached on disk under a key of everything that decides them (the dataset's fingerprint, the
processor's tokenizer, chat template and image settings, the task, `max_length`), so a
resumed run, another seed or another arm of an experiment on the same data and processor
encodes nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipelines.core.splits import TEST, in_test, record_key


@dataclass
class Index:
    lengths: np.ndarray  # int32 per row: tokens of the encoded example; 0 = skipped (its prompt does not fit)
    targets: np.ndarray  # int32 per row: target tokens (the loss is a mean over them)
    full_pixels: np.ndarray  # bool per row: every image attention mask all ones (or no image)
    held_out: np.ndarray  # bool per row: in the evaluation split

    def train_rows(self) -> np.ndarray:
        return np.flatnonzero((self.lengths > 0) & ~self.held_out)

    def eval_rows(self) -> np.ndarray:
        return np.flatnonzero((self.lengths > 0) & self.held_out)

    @property
    def skipped(self) -> int:
        return int((self.lengths == 0).sum())


class _Measured(torch.utils.data.Dataset):
    def __init__(self, rows, encoder):
        self.rows, self.encoder = rows, encoder

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, int, bool]:
        e = self.encoder(self.rows[int(i)])
        if e is None:
            return 0, 0, True
        mask = e.get("pixel_attention_mask")
        return len(e["input_ids"]), e["n_targets"], bool(mask.all()) if mask is not None else True


def _processor_identity(processor) -> str:
    """What in a processor decides how a row is encoded: its tokenizer (vocabulary, merges,
    special tokens), chat templates and image settings."""
    tokenizer = getattr(processor, "tokenizer", processor)
    parts = [type(processor).__name__, str(getattr(tokenizer, "chat_template", "")), str(getattr(processor, "chat_template", ""))]
    backend = getattr(tokenizer, "backend_tokenizer", None)
    parts.append(backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items())))
    if hasattr(processor, "to_dict") and processor is not tokenizer:
        parts.append(json.dumps(processor.to_dict(), sort_keys=True, default=str))
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def index_key(rows, encoder) -> str:
    material = [getattr(rows, "_fingerprint", ""), _processor_identity(encoder.processor), encoder.task, str(encoder.max_length)]
    return hashlib.sha256("\x00".join(material).encode()).hexdigest()[:32]


def default_cache() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "extract-think" / "train_min-index"


def build_index(rows, encoder, eval_fraction: float, workers: int = 0, cache: Path | None = None, progress: bool = False) -> Index:
    """The index of `rows` (a `datasets` Dataset), encoded with `encoder` in `workers`
    processes; read from `cache` (a folder) when an earlier run wrote it, and written there."""
    from tqdm.auto import tqdm

    from train_min.feed import loader

    path = Path(cache) / f"{index_key(rows, encoder)}.npz" if cache else None
    if path is not None and path.is_file():
        with np.load(path) as stored:
            lengths, targets, full = stored["lengths"], stored["targets"], stored["full_pixels"]
    else:
        lengths, targets = np.zeros(len(rows), np.int32), np.zeros(len(rows), np.int32)
        full = np.ones(len(rows), bool)
        batches = [list(range(i, min(i + 64, len(rows)))) for i in range(0, len(rows), 64)]
        measured = loader(_Measured(rows, encoder), batches, list, workers, False, persistent=False)
        for block, values in zip(batches, tqdm(measured, total=len(batches), desc="indexing", disable=not progress)):
            lengths[block], targets[block], full[block] = zip(*values)
        if path is not None:  # written whole, then renamed: a reader never sees half an index
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
            np.savez(tmp, lengths=lengths, targets=targets, full_pixels=full)
            os.replace(tmp, path)
    return Index(lengths, targets, full, held_out_rows(rows, eval_fraction))


def held_out_rows(rows, eval_fraction: float) -> np.ndarray:
    """Which rows are held out: those of the dataset's `test` split (`load_rows` gives each
    row its split), and `eval_fraction` of the records by the publish's own rule (a hash of
    the record id: at the publish's default of 5%, exactly its test split)."""
    held_out = np.zeros(len(rows), bool)
    columns = [c for c in ("id", "record_id", "split") if c in rows.column_names]
    at = 0
    for batch in rows.select_columns(columns).iter(batch_size=10_000):
        n = len(batch["id"])
        batch_rows = [{c: batch[c][i] for c in columns} for i in range(n)]
        held_out[at : at + n] = [r.get("split") == TEST or in_test(record_key(r), eval_fraction) for r in batch_rows]
        at += n
    return held_out
