"""Parsing a reasoning trace's final answer and matching it against the gold answer.

Parsing (`parse_final_answer`), in this order, the first that finds something wins:
1. the last line holding `Answer:` (also `Final answer:`, `**Answer:**`); if that line
   has nothing after the colon, the next non-empty line;
2. the last `\\boxed{...}`;
3. the last "the answer is X" / "answer would be X" phrase;
4. None: the trace is unparsable.
`<think>...</think>` blocks are dropped first, so a reasoner's scratch work never answers.

Matching (`answer_matches`) goes by the turn's answer type:
- "choice": an option letter in any surface form ("B", "(B)", "b)", "B.", "[B]", "Option B",
  "B) red", "Answer: B"), or the option's text instead of the letter, exactly, as the only
  option named in a longer answer, or fuzzily. A letter followed by the text of a *different*
  option contradicts itself and matches nothing; so does naming two options.
- "yesno": the first word, from yes/no variants (yes, yeah, true, correct; no, nope, false, not).
- "number": the first number (commas, decimals, signs, currency and % ignored, units ignored,
  fractions, number words up to the millions, "a dozen", "none"), within a relative tolerance.
- "text": VQA-style normalisation (case, punctuation, articles, number words to digits,
  common contractions, leading fillers such as "it is"), then equality, then rapidfuzz
  `ratio` at `fuzzy_threshold`.

`canonical_answer` maps an answer to the value it means under the same rules, so that
self-consistency can count votes.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache

from rapidfuzz import fuzz

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.IGNORECASE | re.DOTALL)
_ANSWER_LINE = re.compile(r"(?:final\s+)?answer\s*(?:\*\*|__)?\s*[:：]\s*(?:\*\*|__)?(.*)", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_ANSWER_IS = re.compile(r"answer\s+(?:is|would\s+be|will\s+be|should\s+be)\s*:?\s*(.+?)(?:\.(?:\s|$)|\n|$)", re.IGNORECASE)
_PREFIX = re.compile(r"^(?:(?:so|thus|therefore|hence),?\s+)?(?:the\s+)?(?:final\s+|correct\s+)?answer\s*(?:is|would\s+be|:)\s*:?\s*", re.IGNORECASE)
_FILLER = re.compile(r"^(?:it\s+is|it's|its|this\s+is|that\s+is|there\s+is|there\s+are|they\s+are)\s+", re.IGNORECASE)
# A letter on its own: upper case may stand before a space ("B red"); lower case needs
# brackets or a following ".", ")" or ":", or nothing after it, so that "a red bus" is no letter.
_LETTER = re.compile(
    r"^(?:(?i:option|choice|letter)\s+\(?([A-Ha-h])\)?(?![A-Za-z])|\(([A-Ha-h])\)|\[([A-Ha-h])\]|([A-H])(?=[\s.):,;-]|$)|([a-h])(?=[.):]|$))"
)
_OPTION_WORD = re.compile(r"^(?:option|choice|letter)\s+", re.IGNORECASE)
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|[-+]?\.\d+")
_ARTICLES = {"a", "an", "the"}
_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split()
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000}
_SMALL = {w: i for i, w in enumerate(_UNITS)} | {"none": 0, "dozen": 12, "half": 0.5}
_YES = {"yes", "y", "yeah", "yep", "yup", "true", "correct", "affirmative", "right", "indeed"}
_NO = {"no", "n", "nope", "nah", "false", "incorrect", "not", "never", "negative", "none"}
_CONTRACTIONS = {"isnt": "is not", "arent": "are not", "dont": "do not", "doesnt": "does not", "cant": "can not",
                 "cannot": "can not", "wont": "will not", "didnt": "did not", "im": "i am", "its": "it is", "thats": "that is"}
_PUNCT = str.maketrans({c: " " for c in string.punctuation if c not in "'"} | {"'": None})


def parse_final_answer(text: str | None) -> str | None:
    if not text:
        return None
    text = _THINK.sub("", text)
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for i in range(len(lines) - 1, -1, -1):
        m = _ANSWER_LINE.search(lines[i])
        if m:
            value = _clean(m.group(1))
            if not value and i + 1 < len(lines):
                value = _clean(lines[i + 1])
            if value:
                return value
    boxed = _BOXED.findall(text)
    if boxed and boxed[-1].strip():
        return _clean(boxed[-1])
    phrases = [_clean(p) for p in _ANSWER_IS.findall(text)]
    phrases = [p for p in phrases if p]
    return phrases[-1] if phrases else None


def _clean(value: str) -> str:
    value = _BOXED.sub(r"\1", value.strip())
    return value.strip().strip("*_`\"'“”").strip().rstrip(".").strip()


def strip_answer_prefix(pred: str) -> str:
    """'Answer: B' / 'The answer is B' / '**B**' / '\\boxed{B}' -> 'B'."""
    pred = _clean(pred)
    pred = _PREFIX.sub("", pred, count=1)
    return _clean(pred)


@lru_cache(maxsize=4096)  # the same answers and questions come back turn after turn
def normalise_text(text: str) -> str:
    """VQA-style: lower case, punctuation to spaces (apostrophes dropped, thousands
    separators dropped, decimal points kept), contractions expanded, articles dropped, number words to digits."""
    text = text.lower().strip()
    text = re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)  # 1,200 -> 1200
    text = re.sub(r"(?<=\d)\.(?=\d)", "\0", text)  # keep 1.5 whole
    text = text.translate(_PUNCT).replace("\0", ".")
    words = []
    for w in text.split():
        w = _CONTRACTIONS.get(w, w)
        words.extend(w.split())
    words = [w for w in words if w not in _ARTICLES]
    return " ".join(str(_SMALL[w]) if w in _SMALL and w not in ("none", "half", "dozen") else w for w in words)


def words_to_number(words: list[str]) -> float | None:
    """'twenty one' / 'one hundred and five' / 'a dozen' / 'three thousand' -> a number;
    None when the words do not start with a number."""
    total, current, seen = 0.0, 0.0, False
    for w in words:
        if w in ("and", "a", "an") and (seen or w != "and"):
            continue
        if w in _SMALL:
            current += _SMALL[w]
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
    m = _NUMBER.search(text.replace("\u2212", "-"))
    if m:
        raw = m.group().replace(",", "").replace(" ", "")
        if "/" in raw:
            num, den = raw.split("/")
            return float(num) / float(den) if float(den) else None
        return float(raw)
    words = re.sub(r"[-–]", " ", text.lower()).translate(_PUNCT).split()
    for i, w in enumerate(words):
        if w in _SMALL or w in _TENS or w in _SCALES or w == "no" and i == 0:
            return 0.0 if w in ("no", "none") else words_to_number(words[i:])
    return None


def choice_letter(pred: str, choices: tuple[str, ...], fuzzy_threshold: float = 90.0) -> str | None:
    """The option letter `pred` names, or None (no option, an unknown letter, two options,
    or a letter whose following text names a different option)."""
    pred = strip_answer_prefix(pred)
    if not pred:
        return None
    m = _LETTER.match(pred)
    if m:
        letter = next(g for g in m.groups() if g).upper()
        index = ord(letter) - 65
        if m.group(4) and pred[m.end():m.end() + 1].isspace() and choices:
            # "A dog": the article, or option A? Whole text naming an option decides.
            whole = _options_named(normalise_text(pred), choices, fuzzy_threshold)
            if len(whole) == 1 and normalise_text(pred[m.end():]) == normalise_text(choices[whole[0]]):
                return chr(65 + whole[0])
        if choices and index >= len(choices):
            return None
        rest = normalise_text(pred[m.end():].lstrip(".):,;- "))
        if rest and choices:
            named = _options_named(rest, choices, fuzzy_threshold)
            if named and index not in named:
                return None  # "B) green" when B is blue: a contradiction
        return letter
    named = _options_named(normalise_text(_OPTION_WORD.sub("", pred)), choices, fuzzy_threshold)
    return chr(65 + named[0]) if len(named) == 1 else None


def _options_named(text: str, choices: tuple[str, ...], fuzzy_threshold: float) -> list[int]:
    options = [normalise_text(c) for c in choices]
    exact = [i for i, o in enumerate(options) if o and o == text]
    if exact:
        return exact
    padded = f" {text} "
    inside = [i for i, o in enumerate(options) if o and f" {o} " in padded]
    # "the dark red one" names "dark red", not also "red"
    inside = [i for i in inside if not any(j != i and f" {options[i]} " in f" {options[j]} " for j in inside)]
    if inside:
        return inside
    scored = [(fuzz.ratio(text, o), i) for i, o in enumerate(options) if o]
    best = [i for s, i in scored if s >= fuzzy_threshold]
    return best if len(best) == 1 else []


def _yes_no(pred: str) -> str | None:
    words = normalise_text(_FILLER.sub("", strip_answer_prefix(pred))).split()
    if not words:
        return None
    if words[0] in _YES:
        return "yes"
    if words[0] in _NO:
        return "no"
    return None


def _text(pred: str) -> str:
    text = _FILLER.sub("", strip_answer_prefix(pred))
    # a one-letter label ("A", the name of a bar) is an answer, not an article
    return normalise_text(text) or text.strip().lower()


def canonical_answer(pred: str | None, answer_type: str = "text", choices: tuple[str, ...] = (),
                     fuzzy_threshold: float = 90.0):
    """The value `pred` means: a letter, "yes"/"no", a float, or normalised text; None when
    it means nothing of the kind."""
    return _canonical(pred, answer_type, tuple(choices), fuzzy_threshold)


@lru_cache(maxsize=4096)  # gold answers are matched once per sample; samples often agree
def _canonical(pred: str | None, answer_type: str, choices: tuple[str, ...], fuzzy_threshold: float):
    if pred is None or not pred.strip():
        return None
    if answer_type == "choice":
        return choice_letter(pred, choices, fuzzy_threshold)
    if answer_type == "yesno":
        return _yes_no(pred)
    if answer_type == "number":
        return parse_number(strip_answer_prefix(pred))
    return _text(pred) or None


def answer_matches(pred: str | None, gold: str, answer_type: str = "text", choices: tuple[str, ...] = (),
                   tolerance: float = 0.0, fuzzy_threshold: float = 90.0) -> bool:
    p = canonical_answer(pred, answer_type, choices, fuzzy_threshold)
    g = canonical_answer(gold, answer_type, choices, fuzzy_threshold)
    if p is None or g is None:
        return False
    if answer_type == "number":
        return abs(p - g) <= tolerance * abs(g) + 1e-9
    if answer_type in ("choice", "yesno") or p == g:
        return p == g
    return fuzz.ratio(p, g) >= fuzzy_threshold
