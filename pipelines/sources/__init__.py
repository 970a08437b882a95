"""Record sources: all sources of a recipe become one PCollection of Records.

Each source is first cut into small *units of work*: a range of scene numbers (synthetic),
a row range or file (Hugging Face sets), an entry with its image reference (LLaVA JSON,
imagefolder). The units of all sources are flattened and spread over workers, and each
worker turns its units into Records (drawing, reading, checking and normalising there,
`ingest.to_record`). Only units cross a shuffle, never Records with their image bytes, so
the rest of the pipeline can run fused behind the read and memory does not grow with the
number of records. Rows that cannot be used are Records already ended as rejected, with a
reason.

This package is plain Python (`Loader`, `iter_records`: records one after another, for an
evaluation's held-out set, where Beam need not be installed); the Beam read that spreads
the units over workers is `pipelines.sources.beam_read.ReadSources`.
"""

from __future__ import annotations

from typing import Iterator

from pipelines.config.source_config import IngestConfig, SourceConfig
from pipelines.sources.files import check_files, read_imagefolder, read_llava
from pipelines.sources.hf import ReadShard, shard_count
from pipelines.sources.ingest import to_record
from pipelines.sources.synthetic import make_record, num_scenes


def planned_units(config: SourceConfig) -> list | None:
    """The units known before the run starts (scene numbers, shards); None for file sources,
    whose entries are read from their file by a worker. Opening a Hub set here makes a bad
    path fail before the run."""
    if config.kind == "synthetic":
        return scene_ranges(num_scenes(config))
    if config.kind == "hf":
        shards = shard_count(config)
        return [(k, shards) for k in range(shards)]
    check_files(config)
    return None


def scene_ranges(n: int, units: int = 256, most: int = 1000) -> list[tuple[int, int]]:
    """Scene numbers 0..n-1 as [start, stop) ranges: about `units` of them (so that workers
    share the work), none longer than `most` (so that the pipeline graph, which holds the
    units, stays small for millions of scenes)."""
    step = max(1, min(most, -(-n // units)))
    return [(start, min(start + step, n)) for start in range(0, n, step)]


def file_entries(config: SourceConfig):
    """The entries of a file source (LLaVA JSON or an image folder), read from its files."""
    return (read_llava if config.kind == "llava" else read_imagefolder)(config)


class Loader:
    """A unit of source number `i` -> its Records (plain Python: the Beam read wraps it in
    a DoFn, `iter_records` calls it in this process)."""

    def __init__(self, sources: list[SourceConfig], ingest: IngestConfig):
        self._sources, self._ingest = sources, ingest
        self._shards: dict[int, ReadShard] = {}

    def _shard_reader(self, i: int, shards: int) -> ReadShard:
        if i not in self._shards:  # the dataset opened once per source and worker
            reader = ReadShard(self._sources[i], shards)
            reader.setup()
            self._shards[i] = reader
        return self._shards[i]

    def process(self, unit):
        i, value = unit
        config = self._sources[i]
        if config.kind == "synthetic":
            for index in range(*value):
                yield make_record(index, config.synthetic, config.name, config.license)
        elif config.kind == "hf":
            shard, shards = value
            for item in self._shard_reader(i, shards).process(shard):
                yield to_record(item, self._ingest)
        else:
            yield to_record(value, self._ingest)


def expected_count(sources: list[SourceConfig]) -> int | None:
    """How many records the sources will emit, when that is known up front (for progress)."""
    if all(s.kind == "synthetic" for s in sources):
        return sum(num_scenes(s) for s in sources)
    return None


def iter_records(config: SourceConfig, ingest: IngestConfig) -> Iterator:
    """The same Records as `ReadSources`, read one after another in this process (no Beam):
    for small sets such as an evaluation's held-out records."""
    load = Loader([config], ingest)
    planned = planned_units(config)
    for unit in planned if planned is not None else file_entries(config):
        yield from load.process((0, unit))

