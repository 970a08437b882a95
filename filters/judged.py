"""`judged`: the verify stage's verdicts (pipelines/stages/verify.py) as a filter. Every statement
must be judged supported (the extraction, or the image, states it). No sentence of the
extraction may be judged contradicted; judged against the image, none may be "not stated"
either (the image does not show it: an invented detail), while against the other samples
"not stated" is detail they left out (with `strict_sentences` it rejects too). A
verdict the judge's reply did not give ("unparsed") rejects as `judge_unparsable`; the detail
quotes the claim. The score is the share of claims that passed."""

from __future__ import annotations

from pipelines.core.record import Record, Verdict


def judged(record: Record, strict_sentences: bool = False) -> Verdict:
    if record.judgements is None:
        return Verdict.of(judged, False, "judge_missing", 0.0, "the verify stage did not run for this record")
    if not record.judgements:
        return Verdict.of(judged, True, None, 1.0)
    failed = []
    for j in record.judgements:
        if j.verdict == "unparsed":
            failed.append(("judge_unparsable", j))
        elif j.kind == "statement" and j.verdict != "supported":
            failed.append(("statement_judged_" + j.verdict.replace(" ", "_"), j))
        elif j.kind == "sentence" and (j.verdict == "contradicted" or (strict_sentences or j.against == "image") and j.verdict != "supported"):
            failed.append(("sentence_judged_" + j.verdict.replace(" ", "_"), j))
    score = round(1 - len(failed) / len(record.judgements), 4)
    if failed:
        reason, j = failed[0]
        return Verdict.of(judged, False, reason, score, f"{j.kind} {j.claim!r}: {j.verdict}")
    return Verdict.of(judged, True, None, score)
