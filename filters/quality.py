"""Quality filters on the text the dataset publishes: answer leakage and degeneration.

- `leakage`: the extraction is the student's target, so it must describe the image, not solve
  the question: no "the answer is" phrasing, no `Answer:` line, no option letters ("option B",
  "choice (C)"), no talk of "the question". The focus is part of the student's prompt, so it
  must not carry a gold answer that its question does not already contain.
- `degeneration`: outputs cut at max_tokens (finish reason "length"), refusals, repetition
  loops (a word n-gram repeated too often, or too large a share of repeated n-grams), and
  length bounds. Checked on the published extraction and the reasoning traces that would be
  published (`published_trace`).
"""

from __future__ import annotations

import re
from collections import Counter

from filters.correctness import published_trace
from pipelines.core.answers import normalise_text
from pipelines.core.letters import UPPER
from pipelines.core.record import Record, TeacherOutput, Verdict

LEAK_PATTERNS = {
    "answer phrase": re.compile(r"\b(?:the\s+)?(?:correct\s+|right\s+|final\s+)?answer\s+(?:to\s+(?:the|this)\s+question\s+)?(?:is|would\s+be|will\s+be)\b", re.I),
    "answer line": re.compile(r"\b(?:final\s+)?answer\s*(?:\*\*)?\s*[:：]", re.I),
    "option letter": re.compile(rf"\b(?:option|choice)\s*\(?{UPPER}\)?(?![A-Za-z])"),
    "the question": re.compile(r"\b(?:the|this|your)\s+question\b", re.I),
}
REFUSAL = re.compile(
    r"\b(?:I'?m sorry|I am sorry|I apologi[sz]e|I (?:cannot|can'?t|am unable to|'m unable to|won'?t) (?:help|assist|describe|"
    r"provide|comply|view|see)|as an AI\b|I'?m not able to (?:help|describe|see|view))",
    re.I,
)


def leakage(record: Record) -> Verdict:
    text = record.extraction or ""
    for name, pattern in LEAK_PATTERNS.items():
        m = pattern.search(text)
        if m:
            return Verdict.of(leakage, False, "answer_leak", 0.0, f"extraction: {name} {m.group(0).strip()!r}")
    focus = f" {normalise_text(record.focus or '')} "
    # the focus serves every question of the record: what any question says is not a leak
    asked = " ".join(f" {normalise_text(t.question)} " for t in record.turns)
    for turn in record.turns:
        if turn.answer_type == "yesno":
            continue
        gold = normalise_text(turn.answer_text)
        if gold and f" {gold} " in focus and f" {gold} " not in asked:
            return Verdict.of(leakage, False, "focus_leak", 0.0, f"focus {record.focus!r} holds the answer {turn.answer_text!r}")
    return Verdict.of(leakage, True, None, 1.0)


def repeated_ngrams(text: str, n: int = 8) -> tuple[int, float]:
    """(the count of the most repeated word n-gram, the share of n-grams that are repeats)."""
    words = normalise_text(text).split()
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0, 0.0
    counts = Counter(grams)
    return max(counts.values()), 1 - len(counts) / len(grams)


def _outputs(record: Record, answer: dict | None = None) -> list[tuple[str, TeacherOutput]]:
    out = [("extraction", record.extractions[0])] if record.extractions else []
    for i, (turn, samples) in enumerate(zip(record.turns, record.reasoning or ())):
        out.append((f"reasoning[{i}]", published_trace(turn, samples, **(answer or {})).output))
    return out


def degeneration(record: Record, ngram: int = 8, max_ngram_repeats: int = 3, max_repeated_share: float = 0.3,
                 min_words: int = 5, max_words: int = 4000, refusals: bool = True, answer: dict | None = None) -> Verdict:
    """`answer`: the recipe's answer-matching settings (`answer_settings`, given by the
    pipeline, not a recipe param), so the trace checked is the trace published."""
    for where, output in _outputs(record, answer):
        if output.finish_reason == "length":
            return Verdict.of(degeneration, False, "truncated", 0.0, f"{where} stopped at max_tokens")
        m = REFUSAL.search(output.text) if refusals else None
        if m:
            return Verdict.of(degeneration, False, "refusal", 0.0, f"{where}: {m.group(0)!r}")
        top, share = repeated_ngrams(output.text, ngram)
        if top > max_ngram_repeats or share > max_repeated_share:
            return Verdict.of(degeneration, False, "repetition", round(1 - share, 4),
                           f"{where}: a {ngram}-word phrase {top} times, {share:.0%} of phrases repeated")
        words = len(output.text.split())
        if where == "extraction" and words < min_words:
            return Verdict.of(degeneration, False, "too_short", round(words / min_words, 4), f"{where}: {words} words < {min_words}")
        if words > max_words:
            return Verdict.of(degeneration, False, "too_long", round(max_words / words, 4), f"{where}: {words} words > {max_words}")
    return Verdict.of(degeneration, True, None, 1.0)
