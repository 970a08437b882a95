"""Numbers in answers: digits and number words ("twenty one", "a dozen", "1,200", "3/4"),
the result a line answers with ("29 + 36 = 65" -> 65), and golds that look numeric but are
text (phone numbers, dates, IDs)."""

from __future__ import annotations

import re
import string

NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|[-+]?\.\d+")
_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000}
NUMBER_WORDS = {w: i for i, w in enumerate(_UNITS)} | {"none": 0, "dozen": 12, "half": 0.5}
_PUNCT = str.maketrans({c: " " for c in string.punctuation if c not in "'"} | {"'": None})


def words_to_number(words: list[str]) -> float | None:
    """'twenty one' / 'one hundred and five' / 'a dozen' / 'three thousand' -> a number;
    None when the words do not start with a number."""
    total, current, seen = 0.0, 0.0, False
    for w in words:
        if w in ("and", "a", "an") and (seen or w != "and"):
            continue
        if w in NUMBER_WORDS:
            current += NUMBER_WORDS[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w in _SCALES:
            current = max(current, 1) * _SCALES[w]
            if _SCALES[w] >= 1000:
                total, current = total + current, 0.0
        else:
            break
        seen = True
    return total + current if seen else None


def parse_number(text: str) -> float | None:
    """The first number in `text`, digits before words; None when there is none."""
    m = NUMBER.search(text.replace("\u2212", "-"))
    if m:
        raw = m.group().replace(",", "").replace(" ", "")
        if "/" in raw:
            num, den = raw.split("/")
            return float(num) / float(den) if float(den) else None
        return float(raw)
    words = re.sub(r"[-–]", " ", text.lower()).translate(_PUNCT).split()
    for i, w in enumerate(words):
        if w in NUMBER_WORDS or w in _TENS or w in _SCALES or w == "no" and i == 0:
            return 0.0 if w in ("no", "none") else words_to_number(words[i:])
    return None


_COPULA_NUMBER = re.compile(r"\b(?:is|are|was|were|be|equals?|makes|gives(?:\s+us)?)\s+(?:about\s+|approximately\s+|around\s+|only\s+)?[$€£]?\s*([-+]?\d)")
_PLAIN_NUMBER = re.compile(r"^[-+]?[$€£]?\s*(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?\s*(?:%|[a-zA-Z°]+\.?)?$")


def result_number(text: str) -> float | None:
    """The number a line answers with: after the last "=" ("29 + 36 = 65"), else the last
    one after "is"/"are"/"equals" ("the median is the middle value, which is 5"), else the first."""
    text = text.replace("**", "").replace("\u2212", "-")
    numbered = [p for p in re.split(r"(?<=[.!?])\s+|\n+", text) if re.search(r"\d", p)]
    text = numbered[-1] if numbered else text  # the last sentence that holds a number
    if "=" in text:
        after = parse_number(text.rsplit("=", 1)[1])
        if after is not None:
            return after
    copulas = list(_COPULA_NUMBER.finditer(text))
    if copulas:
        return parse_number(text[copulas[-1].start(1):])
    return parse_number(text)


def plain_number(gold: str) -> bool:
    return bool(re.search(r"\d", gold) and _PLAIN_NUMBER.match(gold.strip())) and not id_like(gold)


def id_like(gold: str) -> bool:
    """A gold that is not one plain number ("555-0134", "2019-05-12", "007", "3:45"): text."""
    g = gold.strip()
    return bool(re.search(r"\d", g)) and (not _PLAIN_NUMBER.match(g) or len(re.sub(r"\D", "", g)) > 1 and g.lstrip("+-$€£ ").startswith("0") and "." not in g)
