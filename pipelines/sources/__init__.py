"""Record sources: each turns a recipe's source section into a PCollection of Records."""

import apache_beam as beam

from pipelines.recipe import SourceConfig
from pipelines.sources.synthetic import ReadSynthetic


def read_source(config: SourceConfig) -> beam.PTransform:
    if config.kind == "synthetic":
        return ReadSynthetic(config.synthetic)
    raise ValueError(f"unknown source kind {config.kind!r}")


def expected_count(config: SourceConfig) -> int | None:
    """How many records the source will emit, when that is known up front (for progress)."""
    return config.synthetic.num_records if config.kind == "synthetic" else None
