"""Parquet shards of a config, written by the workers themselves to any fsspec URL (a local
folder, s3://, gs://, az://, ...).

Each bundle streams its rows into files of at most `rows_per_shard` rows, row groups of
`ROW_GROUP` rows (what a reader of an image dataset fetches at a time), under temporary
names; nothing is grouped or shuffled before writing, so a worker holds one row group, not
a shard. A last step, run once after every bundle has committed, renames the files of the
committed bundles `<split>-<run>-SSSSS-of-NNNNN.parquet` and deletes what retried or failed
bundles left behind. Each split of a config has its own writer and its own temporary names. The folder is the run's staging folder: what readers see appears only
when the run swaps it into place (run.py).
"""

from __future__ import annotations

import uuid

import apache_beam as beam
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

ROW_GROUP = 100
TEMP_PREFIX = ".tmp-"


def shard_name(split: str, run_id: str, i: int, n: int) -> str:
    return f"{split}-{run_id}-{i:05d}-of-{n:05d}.parquet"


def _temp_prefix(split: str) -> str:
    return f"{TEMP_PREFIX}{split}-"


class _WriteFiles(beam.DoFn):
    def __init__(self, folder: str, config: str, split: str, rows_per_shard: int, schema: pa.Schema):
        self._folder, self._config, self._split = folder.rstrip("/"), config, split
        self._rows_per_shard, self._schema = rows_per_shard, schema

    def setup(self):
        self._fs, _ = fsspec.core.url_to_fs(self._folder)

    def start_bundle(self):
        self._buffer: list[dict] = []
        self._file = self._writer = None
        self._rows_in_file = 0
        self._written: list[str] = []

    def _open(self):
        path = f"{self._folder}/{self._config}/{_temp_prefix(self._split)}{uuid.uuid4().hex}.parquet"
        self._fs.makedirs(f"{self._folder}/{self._config}", exist_ok=True)
        self._file = self._fs.open(path, "wb")
        self._writer = pq.ParquetWriter(self._file, self._schema, compression="snappy")
        self._written.append(path)

    def _close(self):
        if self._writer is not None:
            self._writer.close()
            self._file.close()
        self._file = self._writer = None
        self._rows_in_file = 0

    def _flush(self):
        while self._buffer:
            if self._writer is None:
                self._open()
            room = min(ROW_GROUP, self._rows_per_shard - self._rows_in_file)
            rows, self._buffer = self._buffer[:room], self._buffer[room:]
            self._writer.write_table(pa.Table.from_pylist(rows, schema=self._schema))
            self._rows_in_file += len(rows)
            if self._rows_in_file >= self._rows_per_shard:
                self._close()

    def process(self, row):
        self._buffer.append(row)
        if len(self._buffer) >= ROW_GROUP:
            self._flush()

    def finish_bundle(self):
        self._flush()
        self._close()
        for path in self._written:  # named only once the bundle is done: a retried bundle's files are not
            yield WindowedValue(path, GlobalWindow().max_timestamp(), (GlobalWindow(),))


def _finalize(_, folder: str, config: str, split: str, run_id: str, written: list[str]):
    """Number the committed files of one split, delete the rest of that split's temporary
    files; yields (config, split, shard count)."""
    fs, _ = fsspec.core.url_to_fs(folder)
    directory = f"{folder.rstrip('/')}/{config}"
    committed = sorted(written)
    for i, path in enumerate(committed):
        fs.mv(path, f"{directory}/{shard_name(split, run_id, i, len(committed))}")
    if fs.exists(directory):
        for leftover in fs.glob(f"{directory}/{_temp_prefix(split)}*"):
            fs.rm(leftover)
    yield config, split, len(committed)


class WriteShards(beam.PTransform):
    """Rows of one split of `config` (dicts of `features`, a `datasets.Features`) -> parquet
    shards `<split>-<run>-*.parquet` under `folder`/`config`, whose schema carries the features."""

    def __init__(self, folder: str, config: str, run_id: str, rows_per_shard: int, features, split: str = "train"):
        super().__init__()
        self._folder, self._config, self._split, self._run_id, self._rows_per_shard = folder, config, split, run_id, rows_per_shard
        self._schema = features.arrow_schema

    def expand(self, rows):
        writer = _WriteFiles(self._folder, self._config, self._split, self._rows_per_shard, self._schema)
        written = rows | "WriteFiles" >> beam.ParDo(writer)
        return (rows.pipeline | "Once" >> beam.Create([None])
                | "NumberShards" >> beam.FlatMap(_finalize, self._folder, self._config, self._split, self._run_id,
                                                 beam.pvalue.AsList(written)))
