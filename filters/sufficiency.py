"""Sufficiency: the think stage saw only the extraction and the question (the pipeline
refuses a think template that uses anything else), so when its traces reach the gold
answer, the extraction held what the question needs. The score is the share of all
reasoning samples, over all turns, that reached it; below `min_ratio` the record is
rejected, so an extraction that leads there only by luck does not pass."""

from __future__ import annotations

from filters.correctness import correct_samples
from pipelines.core.answers import FUZZY_THRESHOLD, MIN_VQA_ACCURACY, TOLERANCE
from pipelines.core.record import Record, Verdict


def sufficiency(record: Record, min_ratio: float = 0.5, tolerance: float = TOLERANCE, fuzzy_threshold: float = FUZZY_THRESHOLD,
                min_vqa_accuracy: float = MIN_VQA_ACCURACY) -> Verdict:
    correct = [c for turn in correct_samples(record, tolerance, fuzzy_threshold, min_vqa_accuracy) for c in turn]
    if not correct:
        return Verdict.of(sufficiency, False, "extraction_insufficient", 0.0)
    ratio = sum(correct) / len(correct)
    if ratio < min_ratio:
        return Verdict.of(sufficiency, False, "extraction_insufficient", ratio,
                       f"{sum(correct)} of {len(correct)} reasoning samples reached the gold answer (< {min_ratio:.0%})")
    return Verdict.of(sufficiency, True, None, ratio)
