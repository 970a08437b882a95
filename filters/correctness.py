"""Answer correctness: for every turn, at least one reasoning trace has a parsable final
answer that matches the gold answer (that trace is the one published)."""

from __future__ import annotations

from filters.answers import answer_matches
from pipelines.record import Record, Verdict

NAME = "answer_correct"


def correct_samples(record: Record, tolerance: float = 0.0, fuzzy_threshold: float = 90.0) -> list[list[bool]]:
    """Per turn, per reasoning sample: did it reach the gold answer."""
    return [
        [answer_matches(s.answer, turn.answer, turn.answer_type, turn.choices, tolerance, fuzzy_threshold) for s in samples]
        for turn, samples in zip(record.turns, record.reasoning or ())
    ]


def published_trace(turn, samples, tolerance: float = 0.0, fuzzy_threshold: float = 90.0):
    """The reasoning sample a turn publishes: the first that reached the gold answer, else the first."""
    return next((s for s in samples if answer_matches(s.answer, turn.answer, turn.answer_type, turn.choices, tolerance, fuzzy_threshold)),
                samples[0])


def answer_correct(record: Record, tolerance: float = 0.0, fuzzy_threshold: float = 90.0) -> Verdict:
    if not record.reasoning:
        return Verdict(NAME, False, "answer_missing", 0.0)
    correct = correct_samples(record, tolerance, fuzzy_threshold)
    solved = sum(any(c) for c in correct)
    score = solved / len(correct)
    for i, (turn, turn_samples, ok) in enumerate(zip(record.turns, record.reasoning, correct)):
        if not any(ok):
            unparsable = all(s.answer is None for s in turn_samples)
            answers = [s.answer for s in turn_samples]
            return Verdict(NAME, False, "answer_unparsable" if unparsable else "answer_wrong", score,
                           f"question {i}: traces answered {answers}, gold {turn.answer!r}")
    return Verdict(NAME, True, None, score)
