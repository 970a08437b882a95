"""The one place filters meet Beam: apply a recipe's filter list in order, record every
verdict on the record, and split into tagged kept / rejected outputs with a counter per
reason. A record that is already ended (failed in a stage) passes to `ended` untouched."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.metrics import Metrics

from filters.registry import FILTERS
from pipelines.recipe import FilterConfig

NAMESPACE = "extract_think.filters"
KEPT, REJECTED, ENDED = "kept", "rejected", "ended"


class _Apply(beam.DoFn):
    def __init__(self, filters: list[FilterConfig]):
        self._filters = filters

    def process(self, record):
        if record.status != "ok":
            yield beam.pvalue.TaggedOutput(ENDED, record)
            return
        for f in self._filters:
            verdict = FILTERS[f.name](record, **f.params)
            record = record.add(verdicts=[verdict])
            if not verdict.keep:
                Metrics.counter(NAMESPACE, f"rejected.{verdict.reason}").inc()
                yield beam.pvalue.TaggedOutput(REJECTED, record.reject(verdict.reason, f"filter {f.name}, score {verdict.score}"))
                return
            Metrics.counter(NAMESPACE, f"passed.{f.name}").inc()
        yield record


class ApplyFilters(beam.PTransform):
    def __init__(self, filters: list[FilterConfig]):
        super().__init__()
        self._filters = filters

    def expand(self, records):
        return records | beam.ParDo(_Apply(self._filters)).with_outputs(REJECTED, ENDED, main=KEPT)
