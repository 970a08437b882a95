"""The funnel's one owner: counts made in a real Beam pipeline read back into a Funnel,
whatever the reasons hold, and the funnel.json form round-trips."""

import dataclasses
import json

import apache_beam as beam

from pipelines.core.record import Record, Verdict
from pipelines.observe import funnel
from pipelines.observe.funnel import Funnel, read_counters


def _record(i: int) -> Record:
    r = Record(id=str(i), source="s", license="cc.by-4.0", images=(), turns=())
    if i % 3 == 1:
        return r.reject("answer.wrong (v1.2)", "detail")  # dots, spaces, brackets in a reason
    if i % 3 == 2:
        return r.fail("teacher_error")
    return r.add(extractions=())


def _count(record: Record) -> Record:
    funnel.count_in(record)
    if record.status == "ok":
        funnel.count_filter("answer.correct", Verdict("answer.correct", True))
        funnel.count_kept(record)
    else:
        if record.status == "rejected":
            funnel.count_filter("answer.correct", Verdict("answer.correct", False, record.reason))
        funnel.count_ended(record)
    return record


def test_counts_from_a_beam_run_read_back_as_written():
    p = beam.Pipeline()
    _ = p | beam.Create(range(9)) | beam.Map(_record) | beam.Map(_count)
    result = p.run()
    result.wait_until_finish()
    f = Funnel.from_counters(read_counters(result), ["answer.correct"], run_id="r1")
    assert (f.records_in, f.kept, f.rejected, f.failed) == (9, 3, 3, 3) and f.conserved
    assert f.rejected_by_reason == {"answer.wrong (v1.2)": 3} and f.failed_by_reason == {"teacher_error": 3}
    assert f.licenses == ["cc.by-4.0"]
    step = f.filters[0]
    assert (step.filter, step.checked, step.passed, step.rejected, step.reasons) == ("answer.correct", 6, 3, 3, {"answer.wrong (v1.2)": 3})
    assert f.lengths["extraction"]["<25"] == 3 and sum(f.lengths["reasoning"].values()) == 0
    assert f.config_rows() == {"extraction": 3, "reasoning": 0, "rejected": 6}


def test_the_json_form_round_trips():
    f = Funnel(records_in=3, kept=1, rejected=1, failed=1, rejected_by_reason={"a.b": 1}, failed_by_reason={"x": 1},
               filters=[funnel.FilterStep("f", 2, 1, {"a.b": 1})], run_id="abc", shards={"extraction": 1})
    data = json.loads(json.dumps(f.to_dict()))
    assert data["in"] == 3 and data["run_id"] == "abc"
    assert data["filters"] == [{"filter": "f", "in": 2, "passed": 1, "rejected": 1, "reasons": {"a.b": 1}}]
    assert Funnel.from_dict(data) == f
    assert not dataclasses.replace(f, kept=2).conserved
