"""Hugging Face `datasets` source: a Hub id, a local dataset folder, a saved dataset
(`save_to_disk`) or a single parquet / arrow / json / csv file.

The image column is read undecoded (`Image(decode=False)`), so a corrupt image becomes one
rejected row in a worker instead of an exception inside `datasets`. The set is read in
shards (contiguous row ranges, or the files of a streamed set) that Beam spreads over
workers; each worker opens the dataset once (memory-mapped from the local cache).
"""

from __future__ import annotations

import difflib
import math
import os
from typing import Iterator

import datasets

from pipelines.config import ConfigError
from pipelines.config.source_config import HFSource, SourceConfig
from pipelines.sources.access import ImageAccess
from pipelines.sources.files import parent
from pipelines.sources.gold import Rules
from pipelines.sources.image_files import Problem
from pipelines.sources.ingest import RawItem, access_for
from pipelines.sources.mapping import mapped_fields, needed_columns, row_images

BUILDERS = {".parquet": "parquet", ".arrow": "arrow", ".json": "json", ".jsonl": "json", ".csv": "csv"}
ROWS_PER_SHARD = 1000


def _undecoded(ds, column: str):
    feature = (ds.features or {}).get(column)
    if isinstance(feature, datasets.Image):
        return ds.cast_column(column, datasets.Image(decode=False))
    if isinstance(feature, (datasets.List, datasets.Sequence)) and isinstance(getattr(feature, "feature", None), datasets.Image):
        return ds.cast_column(column, datasets.List(datasets.Image(decode=False)))
    return ds


def open_dataset(cfg: HFSource, limit: int | None, source: str = ""):
    """The split as a Dataset (or IterableDataset when streaming), image column undecoded;
    `source` (its name) is named in errors."""
    where = f"sources[{source}].hf" if source else "hf"
    path = cfg.path
    try:
        if os.path.isdir(path) and (os.path.exists(f"{path}/state.json") or os.path.exists(f"{path}/dataset_dict.json")):
            ds = datasets.load_from_disk(path)
            if isinstance(ds, datasets.DatasetDict):
                ds = ds[cfg.split]
            if cfg.streaming:
                ds = ds.to_iterable_dataset()
        elif os.path.isfile(path) and os.path.splitext(path)[1] in BUILDERS:
            ds = datasets.load_dataset(BUILDERS[os.path.splitext(path)[1]], data_files={cfg.split: path}, split=cfg.split, streaming=cfg.streaming)
        else:
            ds = datasets.load_dataset(path, cfg.name, split=cfg.split, revision=cfg.revision,
                                       data_files=cfg.data_files or None, streaming=cfg.streaming)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise ConfigError(f"{where}.path {path!r} (split {cfg.split!r}): cannot load: {e}") from None
    columns = ds.column_names or []
    wanted = needed_columns(cfg.columns)
    if cfg.columns.choices and cfg.columns.choices != "choices":
        wanted.append(cfg.columns.choices)  # the default `choices` is used only where present
    missing = [c for c in wanted if c not in columns] if columns else []
    if missing:
        said = []
        for column in missing:
            close = difflib.get_close_matches(column, columns, n=1, cutoff=0.5)
            said.append(f"{column!r} is not a column of {path}" + (f" (closest: {close[0]!r})" if close else ""))
        raise ConfigError(f"{where}.columns: " + "; ".join(said) + f"; its columns: {', '.join(columns)}")
    ds = _undecoded(ds, cfg.columns.image)
    if limit is not None:
        ds = ds.take(limit) if cfg.streaming else ds.select(range(min(limit, len(ds))))
    return ds


def _access(config: SourceConfig) -> ImageAccess:
    """Image paths of a local set resolve in its folder (or image_root); those of a Hub set
    may also point into the caches `datasets` and `huggingface_hub` download to."""
    cfg = config.hf
    if os.path.isfile(cfg.path):
        return access_for(config, cfg.image_root or parent(cfg.path))
    if os.path.isdir(cfg.path):
        return access_for(config, cfg.image_root or cfg.path)
    from huggingface_hub import constants

    return access_for(config, cfg.image_root, (str(datasets.config.HF_DATASETS_CACHE), constants.HF_HUB_CACHE))


def shard_count(config: SourceConfig) -> int:
    cfg = config.hf
    ds = open_dataset(cfg, config.limit, config.name)
    if cfg.streaming:
        return max(1, ds.num_shards) if config.limit is None else 1
    return cfg.shards or max(1, math.ceil(len(ds) / ROWS_PER_SHARD))


class ReadShard:
    """Rows of one shard as RawItems; the dataset is opened once per worker."""

    def __init__(self, config: SourceConfig, shards: int):
        self._config, self._shards = config, shards
        self._ds = None

    def setup(self):
        self._ds = open_dataset(self._config.hf, self._config.limit, self._config.name)

    def process(self, index: int) -> Iterator[RawItem]:
        cfg, c = self._config.hf, self._config.hf.columns
        if cfg.streaming:
            piece, offset = (self._ds.shard(self._shards, index) if self._shards > 1 else self._ds), None
        else:
            piece = self._ds.shard(self._shards, index, contiguous=True)
            n = len(self._ds)  # where `shard(contiguous=True)` starts piece `index`
            offset = n // self._shards * index + min(index, n % self._shards)
        access, rules = _access(self._config), Rules.of(self._config)
        for j, row in enumerate(piece):
            where = f"shard {index} row {j}" if offset is None else f"row {offset + j}"
            origin = f"{cfg.path}:{cfg.split} {where}"
            try:
                if c.id and row.get(c.id) is not None:
                    origin += f" (id {str(row.get(c.id))[:100]})"
                yield RawItem(self._config.name, self._config.license, origin, mapped_fields(row, c), row_images(row, c), access, rules=rules)
            except Problem as p:
                yield RawItem(self._config.name, self._config.license, origin, problem=(p.reason, p.detail))
            except Exception as e:  # noqa: BLE001 - one odd row ends as one rejected row
                yield RawItem(self._config.name, self._config.license, origin, problem=("row_malformed", f"{type(e).__name__}"))
