"""The Beam read of a recipe's sources: units of work spread over workers, each turned
into Records by `pipelines.sources.Loader` (see that package's docstring)."""

from __future__ import annotations

import apache_beam as beam

from pipelines.config.source_config import IngestConfig, SourceConfig
from pipelines.sources import Loader, file_entries, planned_units
from pipelines.sources.dedup import signature, sketch_signature


class _Load(Loader, beam.DoFn):
    """A unit of source number `i` -> its Records, on a Beam worker."""


class _Sign(_Load):
    """A unit of source number `i` -> the dedup Signatures of its usable Records; synthetic
    scenes are sketched, not drawn."""

    def process(self, unit):
        i, value = unit
        config = self._sources[i]
        if config.kind == "synthetic":
            for index in range(*value):
                yield sketch_signature(i, index, config)
            return
        for record in super().process(unit):
            if record.status == "ok":
                yield signature(record)


class ReadSources(beam.PTransform):
    """All of a recipe's sources as one PCollection of Records (of their Signatures, for
    deduplication, with `signatures`)."""

    def __init__(self, sources: list[SourceConfig], ingest: IngestConfig, signatures: bool = False):
        super().__init__()
        self._sources, self._ingest, self._signatures = sources, ingest, signatures

    def expand(self, pbegin):
        parts = []
        for i, s in enumerate(self._sources):
            planned = planned_units(s)
            if planned is not None:
                units = pbegin | f"Units[{s.name}]" >> beam.Create([(i, u) for u in planned], reshuffle=False)
            else:
                units = (pbegin | f"File[{s.name}]" >> beam.Create([s]) | f"Entries[{s.name}]" >> beam.FlatMap(file_entries)
                         | f"Units[{s.name}]" >> beam.Map(lambda item, i=i: (i, item)))
            parts.append(units)
        units = parts[0] if len(parts) == 1 else parts | "AllUnits" >> beam.Flatten()
        load = (_Sign if self._signatures else _Load)(self._sources, self._ingest)
        return units | "Spread" >> beam.Reshuffle() | "Load" >> beam.ParDo(load)
