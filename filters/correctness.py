"""Answer correctness: for every turn, at least one reasoning trace has a parsable final
answer that matches the gold answer (that trace is the one published). A turn that carries
every annotator's answer (`turn.meta["answers"]`, as VQAv2, VizWiz and TextVQA give ten)
also accepts an answer whose VQA accuracy, min(#annotators who gave it / 3, 1), reaches
`min_vqa_accuracy`; a turn with equally right answers (`turn.meta["alternatives"]`, as
DocVQA lists) accepts any of them."""

from __future__ import annotations

from pipelines.core.answers import FUZZY_THRESHOLD, MIN_VQA_ACCURACY, TOLERANCE, answer_matches, vqa_accuracy
from pipelines.core.record import Record, Verdict

ANSWER_PARAMS = ("tolerance", "fuzzy_threshold", "min_vqa_accuracy")  # how an answer is matched to the gold


def answer_settings(filters) -> dict:
    """The answer-matching settings a recipe's `answer_correct` filter uses (from its
    `(name, params)` configs; none: the defaults), for every other reader of "which trace
    reached the gold" (the published trace, the degeneration filter) to match the same way."""
    params = next((dict(f.params) for f in filters if f.name == answer_correct.__name__), {})
    return {k: float(v) for k, v in params.items() if k in ANSWER_PARAMS}


def reaches_gold(answer: str | None, turn, tolerance: float = TOLERANCE, fuzzy_threshold: float = FUZZY_THRESHOLD,
                 min_vqa_accuracy: float = MIN_VQA_ACCURACY) -> bool:
    if answer_matches(answer, turn.answer, turn.answer_type, turn.choices, tolerance, fuzzy_threshold):
        return True
    alternatives = turn.meta.get("alternatives") if turn.meta else None
    if alternatives and any(answer_matches(answer, alt, turn.answer_type, turn.choices, tolerance, fuzzy_threshold)
                            for alt in alternatives[1:]):
        return True
    annotators = turn.meta.get("answers") if turn.meta else None
    return bool(annotators) and turn.answer_type == "text" and vqa_accuracy(answer, annotators) >= min_vqa_accuracy


def correct_samples(record: Record, tolerance: float = TOLERANCE, fuzzy_threshold: float = FUZZY_THRESHOLD,
                    min_vqa_accuracy: float = MIN_VQA_ACCURACY) -> list[list[bool]]:
    """Per turn, per reasoning sample: did it reach the gold answer."""
    return [[reaches_gold(s.answer, turn, tolerance, fuzzy_threshold, min_vqa_accuracy) for s in samples]
            for turn, samples in zip(record.turns, record.reasoning or ())]


def published_trace(turn, samples, tolerance: float = TOLERANCE, fuzzy_threshold: float = FUZZY_THRESHOLD, min_vqa_accuracy: float = MIN_VQA_ACCURACY):
    """The reasoning sample a turn publishes: the first that reached the gold answer (matched
    with the filter's settings: `answer_settings`), else the first."""
    return next((s for s in samples if reaches_gold(s.answer, turn, tolerance, fuzzy_threshold, min_vqa_accuracy)), samples[0])


def answer_correct(record: Record, tolerance: float = TOLERANCE, fuzzy_threshold: float = FUZZY_THRESHOLD, min_vqa_accuracy: float = MIN_VQA_ACCURACY) -> Verdict:
    if not record.reasoning:
        return Verdict.of(answer_correct, False, "answer_missing", 0.0)
    correct = correct_samples(record, tolerance, fuzzy_threshold, min_vqa_accuracy)
    solved = sum(any(c) for c in correct)
    score = solved / len(correct)
    for i, (turn, turn_samples, ok) in enumerate(zip(record.turns, record.reasoning, correct)):
        if not any(ok):
            unparsable = all(s.answer is None for s in turn_samples)
            answers = [s.answer for s in turn_samples]
            return Verdict.of(answer_correct, False, "answer_unparsable" if unparsable else "answer_wrong", score,
                           f"question {i}: traces answered {answers}, gold {turn.answer!r}")
    return Verdict.of(answer_correct, True, None, score)
