"""Parsing a reasoning trace's final answer and matching it against the gold answer.

`parse_final_answer` takes the last line matching `Answer\s*:\s*(.+)`; if no line has that
form it falls back to "the answer is X" phrasing, and otherwise returns None (unparsable).
`answer_matches` compares by the turn's answer type: option letters (or the option's text),
yes/no variants, numbers (digits or number words, units ignored, a relative tolerance), and
VQA-style normalised text with a fuzzy fallback.
"""

from __future__ import annotations

import re
import string

from rapidfuzz import fuzz

_ANSWER_LINE = re.compile(r"answer\s*:\s*(.+)", re.IGNORECASE)
_ANSWER_IS = re.compile(r"the (?:final |correct )?answer is\s*:?\s*(.+?)(?:[.\n]|$)", re.IGNORECASE)
_LETTER = re.compile(r"^\(?([A-Ha-h])\)?(?:[.):\s]|$)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?|-?\.\d+")
_ARTICLES = {"a", "an", "the"}
_WORDS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty".split()
_YES = {"yes", "y", "true", "correct", "yeah", "yep"}
_NO = {"no", "n", "false", "incorrect", "nope"}


def parse_final_answer(text: str) -> str | None:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for line in reversed(lines):
        m = _ANSWER_LINE.search(line)
        if m and m.group(1).strip():
            return m.group(1).strip().strip("*").strip()
    matches = _ANSWER_IS.findall(text)
    return matches[-1].strip() if matches else None


def normalise_text(text: str) -> str:
    text = text.lower().strip()
    text = text.translate(str.maketrans({c: " " for c in string.punctuation if c not in "-"}))
    return " ".join(w for w in text.split() if w not in _ARTICLES)


def _number(text: str) -> float | None:
    m = _NUMBER.search(text)
    if m:
        return float(m.group().replace(",", ""))
    for word in normalise_text(text).split():
        if word in _WORDS:
            return float(_WORDS.index(word))
    return None


def _letter(pred: str, choices: tuple[str, ...]) -> str | None:
    m = _LETTER.match(pred.strip())
    if m and ord(m.group(1).upper()) - 65 < max(len(choices), 1):
        return m.group(1).upper()
    norm = normalise_text(pred)
    for i, option in enumerate(choices):
        if normalise_text(option) == norm:
            return chr(65 + i)
    return None


def answer_matches(pred: str | None, gold: str, answer_type: str = "text", choices: tuple[str, ...] = (),
                   tolerance: float = 0.0, fuzzy_threshold: float = 90.0) -> bool:
    if pred is None or not pred.strip():
        return False
    if answer_type == "choice":
        return _letter(pred, choices) == gold.strip().upper()
    if answer_type == "yesno":
        first = normalise_text(pred).split()[:1]
        word = first[0] if first else ""
        return (word in _YES and gold.lower() == "yes") or (word in _NO and gold.lower() == "no")
    if answer_type == "number":
        p, g = _number(pred), _number(gold)
        return p is not None and g is not None and abs(p - g) <= tolerance * max(abs(g), 1e-9)
    p, g = normalise_text(pred), normalise_text(gold)
    if p == g:
        return True
    return bool(p and g) and fuzz.ratio(p, g) >= fuzzy_threshold
