"""Record sources: every source of a recipe becomes one PCollection of Records.

Synthetic scenes are drawn as Records directly. File and dataset sources are read as
`RawItem`s (cheap, sequential per file or shard), spread over workers, then checked and
normalised there (`ingest.to_record`); rows that cannot be used are Records already ended
as rejected, with a reason.
"""

from __future__ import annotations

import apache_beam as beam

from pipelines.source_config import IngestConfig, SourceConfig
from pipelines.sources.files import check_files, read_imagefolder, read_llava
from pipelines.sources.hf import ReadShard, shard_count
from pipelines.sources.ingest import to_record
from pipelines.sources.synthetic import ReadSynthetic, make_record


class ReadSource(beam.PTransform):
    def __init__(self, config: SourceConfig, ingest: IngestConfig):
        super().__init__()
        self._config, self._ingest = config, ingest

    def expand(self, pbegin):
        config = self._config
        if config.kind == "synthetic":
            return pbegin | ReadSynthetic(config)
        if config.kind == "hf":
            shards = shard_count(config)  # opens the dataset once here: a bad path fails before the run
            raw = pbegin | "Shards" >> beam.Create(range(shards)) | "SpreadShards" >> beam.Reshuffle() | "ReadRows" >> beam.ParDo(ReadShard(config, shards))
        else:
            check_files(config)
            reader = read_llava if config.kind == "llava" else read_imagefolder
            raw = pbegin | "File" >> beam.Create([config]) | "ReadEntries" >> beam.FlatMap(reader)
        return raw | "Spread" >> beam.Reshuffle() | "CheckAndLoad" >> beam.Map(to_record, self._ingest)


class ReadSources(beam.PTransform):
    """All of a recipe's sources, flattened into one PCollection of Records."""

    def __init__(self, sources: list[SourceConfig], ingest: IngestConfig):
        super().__init__()
        self._sources, self._ingest = sources, ingest

    def expand(self, pbegin):
        parts = [pbegin | f"Read[{s.name}]" >> ReadSource(s, self._ingest) for s in self._sources]
        return parts[0] if len(parts) == 1 else parts | "AllSources" >> beam.Flatten()


def expected_count(sources: list[SourceConfig]) -> int | None:
    """How many records the sources will emit, when that is known up front (for progress)."""
    if all(s.kind == "synthetic" for s in sources):
        return sum(s.synthetic.num_records if s.limit is None else min(s.limit, s.synthetic.num_records) for s in sources)
    return None


def iter_records(config: SourceConfig, ingest: IngestConfig):
    """The same Records as `ReadSource`, read one after another in this process (no Beam):
    for small sets such as an evaluation's held-out records."""
    if config.kind == "synthetic":
        n = config.synthetic.num_records if config.limit is None else min(config.limit, config.synthetic.num_records)
        for i in range(n):
            yield make_record(i, config.synthetic, config.name, config.license)
        return
    if config.kind == "hf":
        shards = shard_count(config)
        reader = ReadShard(config, shards)
        reader.setup()
        raw = (item for i in range(shards) for item in reader.process(i))
    else:
        check_files(config)
        raw = (read_llava if config.kind == "llava" else read_imagefolder)(config)
    for item in raw:
        yield to_record(item, ingest)
