"""Consistency filters: do the teacher's outputs agree with the statements, with each other
and with themselves?

- `statement_count`: one statement per QA turn (the statements stage writes one line per pair;
  a merged or dropped line means the extraction was steered by the wrong facts).
- `statement_coverage`: each statement's content appears in the published extraction (the
  extraction prompt asks the teacher to work them in); the score is the weakest statement's
  support (pipelines/support/text.py).
- `extraction_agreement`: every sentence of the published extraction agrees with the other
  extraction samples, claim by claim (pipelines/support/claims.py): the thing it is about is named by
  some other sample, and no count or colour it states is contradicted by most of them. An
  object the teacher saw once and never again, a miscount, is what sampling exposes;
  paraphrase and extra detail are not disagreement. The score is the share of backed
  sentences. `scorer` set to a support measure (recall, lexical, ...) instead asks each
  sentence to be supported by at least half of the other samples at `min_support` (v1).
  Needs `stages.extraction.sampling.n` >= 2.
- `self_consistency`: per question, the majority answer of the M reasoning samples (votes by
  the meaning of the answer: "(B)" and "blue" are one vote) must be the gold answer and hold at
  least `min_agreement` of the votes; the score is the lowest agreement over the questions.
"""

from __future__ import annotations

from collections import Counter

from pipelines.core.answers import FUZZY_THRESHOLD, TOLERANCE, answer_matches, canonical_answer
from pipelines.core.record import Record, TeacherOutput, Verdict
from pipelines.support.claims import claim_agreement
from pipelines.support.lexical import SUPPORTED, support
from pipelines.support.text import sentences


def statement_count(record: Record) -> Verdict:
    """One statement per question. The score is in [0, 1] like every score: the smaller of
    the two counts over the larger (1.0 when they agree); the counts themselves are published
    in the rows' `counts` column."""
    n, want = len(record.statements or ()), len(record.turns)
    score = min(n, want) / max(n, want) if max(n, want) else 1.0
    if n != want:
        return Verdict.of(statement_count, False, "statements_count_mismatch", round(score, 4), f"{n} statements for {want} questions")
    return Verdict.of(statement_count, True, None, 1.0)


def statement_supports(statements, extraction: str, questions, scorer: str = "lexical") -> list[float]:
    """Each statement's support by the extraction (statement_coverage's score is the least of
    them; calibrate scores statement labels with it). Statement i restates turn i when the
    counts agree (statement_count checks that): its question's words are not demanded."""
    questions = list(questions) if len(questions) == len(statements) else [None] * len(statements)
    return [support(s, extraction, scorer, q) for s, q in zip(statements, questions)]


def statement_coverage(record: Record, min_score: float = SUPPORTED, scorer: str = "lexical") -> Verdict:
    statements = record.statements or ()
    if not statements or not record.extraction:
        return Verdict.of(statement_coverage, False, "statement_not_covered", 0.0)
    scores = statement_supports(statements, record.extraction, [t.question for t in record.turns], scorer)
    score, weakest = min(zip(scores, statements))
    if score < min_score:
        return Verdict.of(statement_coverage, False, "statement_not_covered", round(score, 4), f"{weakest!r} (support {score:.2f})")
    return Verdict.of(statement_coverage, True, None, round(score, 4))


def sentence_support(record: Record, min_support: float = SUPPORTED, scorer: str = "recall") -> list[tuple[str, float]]:
    """Each sentence of the published extraction with the share of other samples supporting
    it; a sentence that a statement supports counts as fully backed (the statements are the
    gold answers rewritten: the teacher was told that fact, it did not invent it)."""
    others = [o.text for o in (record.extractions or ())[1:]]
    told = " ".join(record.statements or ())
    out = []
    for sentence in sentences(record.extraction or ""):
        if told and support(sentence, told, scorer) >= min_support:
            out.append((sentence, 1.0))
            continue
        backed = sum(support(sentence, other, scorer) >= min_support for other in others)
        out.append((sentence, backed / len(others) if others else 0.0))
    return out


def extraction_agreement(record: Record, min_agreement: float = 1.0, min_weight: float = 2.5, novel_share: float = 0.6,
                         scorer: str = "claims", min_support: float = 0.9) -> Verdict:
    if not record.extractions or len(record.extractions) < 2:
        return Verdict.of(extraction_agreement, False, "extraction_unconfirmed", 0.0)
    if scorer == "claims":
        return _claim_agreement(record, min_agreement, min_weight, novel_share)
    shares = sentence_support(record, min_support, scorer)
    if not shares:
        return Verdict.of(extraction_agreement, False, "extraction_disagreement", 0.0)
    score = sum(share >= 0.5 for _, share in shares) / len(shares)
    if score < min_agreement:
        lone = next(s for s, share in shares if share < 0.5)
        return Verdict.of(extraction_agreement, False, "extraction_disagreement", round(score, 4),
                       f"{lone!r} is backed by {min(sh for _, sh in shares):.0%} of the other samples")
    return Verdict.of(extraction_agreement, True, None, round(score, 4))


def backed_sentences(extraction: str, others: list[str], statements=(), scorer: str = "claims", min_weight: float = 2.5,
                     novel_share: float = 0.6, min_support: float = 0.9) -> list[bool]:
    """Whether each sentence of `extraction` (as `sentences` splits it) is backed by the other
    samples, as extraction_agreement decides it: claim by claim, or (another scorer) by at
    least half of them. calibrate compares this with reviewers' sentence labels."""
    if scorer == "claims":
        return [why is None for _, why in claim_agreement(extraction, others, tuple(statements), min_weight=min_weight,
                                                          novel_share=novel_share)]
    record = Record(id="", source="", license="", images=(), turns=(), statements=tuple(statements),
                    extractions=tuple(TeacherOutput(t, "stop") for t in (extraction, *others)))
    return [share >= 0.5 for _, share in sentence_support(record, min_support, scorer)]


def votes(record: Record, turn_index: int, fuzzy_threshold: float = FUZZY_THRESHOLD) -> Counter:
    """The reasoning samples' answers for one turn, counted by meaning (None: unparsable)."""
    turn = record.turns[turn_index]
    return Counter(canonical_answer(s.answer, turn.answer_type, turn.choices, fuzzy_threshold) for s in record.reasoning[turn_index])


def self_consistency(record: Record, min_agreement: float = 0.5, tolerance: float = TOLERANCE, fuzzy_threshold: float = FUZZY_THRESHOLD) -> Verdict:
    if not record.reasoning:
        return Verdict.of(self_consistency, False, "answer_missing", 0.0)
    lowest = 1.0
    for i, turn in enumerate(record.turns):
        counts = votes(record, i, fuzzy_threshold)
        majority, n = counts.most_common(1)[0]
        agreement = n / sum(counts.values())
        lowest = min(lowest, agreement)
        tied = sum(1 for c in counts.values() if c == n) > 1
        if majority is None or tied or not answer_matches(str(majority), turn.answer, turn.answer_type, turn.choices, tolerance, fuzzy_threshold):
            return Verdict.of(self_consistency, False, "majority_wrong", round(agreement, 4),
                           f"question {i}: votes {dict(counts)}, gold {turn.answer!r}")
        if agreement < min_agreement:
            return Verdict.of(self_consistency, False, "reasoning_inconsistent", round(agreement, 4),
                           f"question {i}: {agreement:.0%} of votes for the majority < {min_agreement:.0%}")
    return Verdict.of(self_consistency, True, None, round(lowest, 4))


def _claim_agreement(record: Record, min_agreement: float, min_weight: float, novel_share: float) -> Verdict:
    judged = claim_agreement(record.extraction or "", [o.text for o in record.extractions[1:]],
                             tuple(record.statements or ()), min_weight=min_weight, novel_share=novel_share)
    if not judged:
        return Verdict.of(extraction_agreement, False, "extraction_disagreement", 0.0)
    score = sum(why is None for _, why in judged) / len(judged)
    if score < min_agreement:
        sentence, why = next((s, w) for s, w in judged if w)
        return Verdict.of(extraction_agreement, False, "extraction_disagreement", round(score, 4), f"{sentence!r}: {why}")
    return Verdict.of(extraction_agreement, True, None, round(score, 4))
