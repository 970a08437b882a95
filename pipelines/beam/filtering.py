"""The one place filters meet Beam: apply a list of filters in order, record every verdict
on the record (its score lands in the published `scores` column), with counters per filter
and per reason (the card's funnel). Kept records are the main output; records rejected here
and records that had already ended (failed in a stage, rejected at the source) go to the
`ended` output, or, with `split=False`, stay in the main output (a rejected record flows on
untouched through the stages after). `decontaminate` gets the eval sets' entries as a Beam
side input."""

from __future__ import annotations

import apache_beam as beam

from filters.correctness import answer_settings
from filters.decontamination import EvalIndex
from filters.registry import ANSWER_AWARE, EVAL_FILTER, FILTERS, split_params
from pipelines.config.recipe import FilterConfig
from pipelines.observe.funnel import count_filter

KEPT, ENDED = "kept", "ended"


class _Apply(beam.DoFn):
    def __init__(self, filters: list[FilterConfig], split: bool, check=None):
        self._split, self._check = split, check
        # (name, function, per-record params, index params), resolved once, not per record
        self._calls = []
        for f in filters:
            params, index_params = split_params(f.name, f.params)
            if f.name in ANSWER_AWARE:
                params["answer"] = answer_settings(filters)
            self._calls.append((f.name, FILTERS[f.name], params, index_params))
        self._index: EvalIndex | None = None

    def _with_index(self, params: dict, index_params: dict, entries) -> dict:
        if self._index is None:  # the eval sets' index, built once per DoFn instance
            self._index = EvalIndex(entries or (), **index_params)
        return {**params, "index": self._index}

    def process(self, record, entries=None):
        if record.status != "ok":
            yield beam.pvalue.TaggedOutput(ENDED, record) if self._split else record
            return
        for name, fn, params, index_params in self._calls:
            if name == EVAL_FILTER:
                params = self._with_index(params, index_params, entries)
            verdict = fn(record, **params)
            record = record.add(verdicts=[verdict])
            count_filter(name, verdict)
            if not verdict.keep:
                detail = f"{name}: {verdict.detail}" if verdict.detail else f"{name}, score {verdict.score}"
                rejected = record.reject(verdict.reason, detail)
                yield beam.pvalue.TaggedOutput(ENDED, rejected) if self._split else rejected
                return
        problem = self._check(record) if self._check else None
        if problem:  # kept by every filter, but its rows cannot be written
            failed = record.fail("row_template_error", problem)
            yield beam.pvalue.TaggedOutput(ENDED, failed) if self._split else failed
            return
        yield record


class ApplyFilters(beam.PTransform):
    """`eval_entries`: a PCollection of EvalEntry, needed when the list has `decontaminate`;
    `check(record) -> problem or None`: a last check of a record every filter kept (its
    published rows can be made), failing it with `row_template_error`."""

    def __init__(self, filters: list[FilterConfig], eval_entries=None, split: bool = True, check=None):
        super().__init__()
        self._filters, self._entries, self._split, self._check = filters, eval_entries, split, check

    def expand(self, records):
        side = [beam.pvalue.AsList(self._entries)] if self._entries is not None else []
        applied = beam.ParDo(_Apply(self._filters, self._split, self._check), *side)
        return records | (applied.with_outputs(ENDED, main=KEPT) if self._split else applied)
