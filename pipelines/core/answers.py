"""Parsing a reasoning trace's final answer and matching it against the gold answer.

Parsing (`parse_final_answer`), in this order, the first that finds something wins:
1. the last line holding `Answer:` in any markdown dress (`Final answer:`, `**Answer:**`,
   `*Answer*:`, `### Answer:`); if that line has nothing after the colon, the next non-empty line;
2. the last `\\boxed{...}`;
3. the last "the answer is X" / "answer would be X" phrase;
4. the last line that is not a pleasantry ("Let me know if ...", a closing question), as the
   paper's parser does when there is no `Answer:`;
5. None: nothing is left.
`<think>...</think>` blocks and end-of-text tokens (`</s>`, `<|im_end|>`) are dropped first,
so a reasoner's scratch work never answers.

Matching (`answer_matches`) goes by the turn's answer type:
- "choice": an option letter in any surface form ("B", "(B)", "b)", "B.", "[B]", "Option B",
  "B) red", "Answer: B"), or the option's text instead of the letter, exactly, as the only
  option named in a longer answer, or fuzzily. A letter followed by the text of a *different*
  option contradicts itself and matches nothing; so does naming two options.
- "yesno": the first word, from yes/no variants (yes, yeah, true, correct; no, nope, false, not),
  after an option letter ("(B) No"); else the first word of a later sentence, or "so, yes".
- "number": the result of the line: after the last "=", else the last number after "is",
  "are", "was", "equals", else the first number (commas, decimals, signs, currency and %
  ignored, units ignored, fractions, number words up to the millions, "a dozen", "none"),
  within a relative tolerance (pipelines/core/numbers.py). A gold that is not one plain number (a phone number, a date,
  an ID, "007") is matched as text.
- "text": VQA-style normalisation (case, punctuation, articles, number words to digits,
  common contractions, leading fillers such as "it is"), then equality; the same words in
  any order ("red and white"); the gold as a whole phrase inside the answer ("Red coat",
  "The couch is red."), unless negated there ("not red"); then rapidfuzz `ratio` at
  `fuzzy_threshold`, but only when neither side holds a digit: digits match exactly.
- Golds written with `<OR>` (any of the alternatives) or `<AND>` (every part, in a text
  answer), as MM-Vet writes them.
- `vqa_accuracy`: min(#annotators who gave the answer / 3, 1), for turns that carry every
  annotator's answer.

`canonical_answer` maps an answer to the value it means under the same rules, so that
self-consistency can count votes.
"""

from __future__ import annotations

import re
import string
from functools import lru_cache

from rapidfuzz import fuzz

from pipelines.core import letters
from pipelines.core.letters import ANY_CASE, LOWER, UPPER
from pipelines.core.numbers import NUMBER, NUMBER_WORDS, id_like, parse_number, plain_number, result_number

# How an answer is matched to its gold, unless a recipe's answer_correct says otherwise: the
# relative tolerance of a number, the fuzzy ratio a text answer needs, the share of annotators
# that must agree (VQA accuracy).
TOLERANCE = 0.0
FUZZY_THRESHOLD = 90.0
MIN_VQA_ACCURACY = 1.0

_THINK = re.compile(r"<think>.*?(?:</think>|$)", re.IGNORECASE | re.DOTALL)
_END_TOKENS = re.compile(r"</s>|<\|(?:im_end|eot_id|endoftext|end)\|>|<end_of_turn>|<eos>", re.IGNORECASE)
_ANSWER_LINE = re.compile(r"(?:final\s+)?answer[\s*_`]*[:：][\s*_`]*(.*)", re.IGNORECASE)
_PLEASANTRY = re.compile(r"\?\s*$|^(?:i hope|hope this|let me know|feel free|if you (?:have|need)|is there anything)", re.IGNORECASE)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_ANSWER_IS = re.compile(r"answer\s+(?:is|would\s+be|will\s+be|should\s+be)\s*:?\s*(.+?)(?:\.(?:\s|$)|\n|$)", re.IGNORECASE)
_PREFIX = re.compile(r"^(?:(?:so|thus|therefore|hence),?\s+)?(?:the\s+)?(?:final\s+|correct\s+)?answer\s*(?:is|would\s+be|:)\s*:?\s*", re.IGNORECASE)
_FILLER = re.compile(r"^(?:it\s+is|it's|its|this\s+is|that\s+is|there\s+is|there\s+are|they\s+are)\s+", re.IGNORECASE)
# A letter on its own: upper case may stand before a space ("B red"); lower case needs
# brackets or a following ".", ")" or ":", or nothing after it, so that "a red bus" is no letter.
_LETTER = re.compile(
    rf"^(?:(?i:option|choice|letter)\s+\(?({ANY_CASE})\)?(?![A-Za-z])|\(({ANY_CASE})\)|\[({ANY_CASE})\]|({UPPER})(?=[\s.):,;-]|$)|({LOWER})(?=[.):]|$))"
)
_OPTION_WORD = re.compile(r"^(?:option|choice|letter)\s+", re.IGNORECASE)
_ARTICLES = {"a", "an", "the"}
_YES = {"yes", "y", "yeah", "yep", "yup", "true", "correct", "affirmative", "right", "indeed"}
_NO = {"no", "n", "nope", "nah", "false", "incorrect", "not", "never", "negative", "none"}
_CONTRACTIONS = {"isnt": "is not", "arent": "are not", "dont": "do not", "doesnt": "does not", "cant": "can not",
                 "cannot": "can not", "wont": "will not", "didnt": "did not", "im": "i am", "its": "it is", "thats": "that is"}
_PUNCT = str.maketrans({c: " " for c in string.punctuation if c not in "'"} | {"'": None})


def parse_final_answer(text: str | None, last_line: bool = True) -> str | None:
    """The final answer of a reply (see the module doc); `last_line=False` leaves out the
    last-line fallback (step 4)."""
    if not text:
        return None
    text = _END_TOKENS.sub("", _THINK.sub("", text))
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
    if phrases:
        return phrases[-1]
    if not last_line:
        return None
    if sum(bool(re.match(rf"\(?{UPPER}\)", ln)) for ln in lines) > 1 or any(_ANSWER_LINE.search(ln) for ln in lines):
        return None  # a list of options, or an empty Answer: line, is no answer
    last = [ln for ln in lines if not _PLEASANTRY.search(ln)]
    return _clean(last[-1]) or None if last else None


def _clean(value: str) -> str:
    value = _BOXED.sub(r"\1", value.strip())
    value = re.sub(r"^#+\s*", "", value.strip())
    value = re.sub(r"(\*\*|__)(.+?)\1", r"\2", value)  # **bold** inside a line
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
    return " ".join(str(NUMBER_WORDS[w]) if w in NUMBER_WORDS and w not in ("none", "half", "dozen") else w for w in words)


def choice_letter(pred: str, choices: tuple[str, ...], fuzzy_threshold: float = FUZZY_THRESHOLD) -> str | None:
    """The option letter `pred` names, or None (no option, an unknown letter, two options,
    or a letter whose following text names a different option)."""
    pred = strip_answer_prefix(pred)
    if not pred:
        return None
    m = _LETTER.match(pred)
    if m:
        letter = next(g for g in m.groups() if g).upper()
        index = letters.index(letter)
        if m.group(4) and pred[m.end():m.end() + 1].isspace() and choices:
            # "A dog": the article, or option A? Whole text naming an option decides.
            whole = _options_named(normalise_text(pred), choices, fuzzy_threshold)
            if len(whole) == 1 and normalise_text(pred[m.end():]) == normalise_text(choices[whole[0]]):
                return letters.letter(whole[0])
        if choices and index >= len(choices):
            return None
        rest = normalise_text(pred[m.end():].lstrip(".):,;- "))
        if rest and choices:
            named = _options_named(rest, choices, fuzzy_threshold)
            if named and index not in named:
                return None  # "B) green" when B is blue: a contradiction
        return letter
    named = _options_named(normalise_text(_OPTION_WORD.sub("", pred)), choices, fuzzy_threshold)
    return letters.letter(named[0]) if len(named) == 1 else None


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


_LEADING_LETTER = re.compile(rf"^\(?{ANY_CASE}\)[\s,.:]*|^{UPPER}[.:)]\s+")
_CANNOT = re.compile(r"\bI (?:do not|don't|cannot|can't|am unable to|'m unable to) (?:have|provide|answer|determine|tell|see|access)|"
                     r"\bwithout (?:the )?(?:specific )?(?:data|chart|image)|\bas an AI\b|my (?:last )?training", re.IGNORECASE)
_SO = re.compile(r"\b(?:so|thus|therefore|hence),?\s+(yes|no)\b", re.IGNORECASE)


def _yes_no(pred: str) -> str | None:
    pred = _LEADING_LETTER.sub("", strip_answer_prefix(pred))
    starts = []
    for sentence in re.split(r"(?<=[.!?;])\s+", pred):
        words = normalise_text(_FILLER.sub("", sentence)).split()
        if words and (words[0] in _YES or words[0] in _NO):
            starts.append("yes" if words[0] in _YES else "no")
    if starts and (starts[0] == starts[-1] or len(pred.split()) < 4):
        return starts[0]
    so = {m.lower() for m in _SO.findall(pred)}
    if len(so) == 1:
        return so.pop()
    # no yes/no word: a plain negated statement ("X is not the smoothest colour") says no; a refusal says nothing
    if _CANNOT.search(pred):
        return None
    return "no" if not so and re.search(r"\b(?:not|isn't|aren't|doesn't|don't|no)\b|n't\b", pred, re.I) else None


def _text(pred: str) -> str:
    text = _FILLER.sub("", strip_answer_prefix(pred))
    # a one-letter label ("A", the name of a bar) is an answer, not an article
    return normalise_text(text) or text.strip().lower()


def canonical_answer(pred: str | None, answer_type: str = "text", choices: tuple[str, ...] = (),
                     fuzzy_threshold: float = FUZZY_THRESHOLD):
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
        letter = _LETTER.match(strip_answer_prefix(pred)) if choices else None
        if letter and not strip_answer_prefix(pred)[letter.end():].strip(" .):"):  # "(B)" when the options are Yes / No
            index = ord(next(g for g in letter.groups() if g).upper()) - 65
            return _yes_no(choices[index]) if index < len(choices) else None
        return _yes_no(pred)
    if answer_type == "number":
        return result_number(strip_answer_prefix(pred))
    return _text(pred) or None


_NEGATED = re.compile(r"\b(?:not|no|never|neither|nor|isn't|aren't|without)\s+(?:\w+\s+)?$", re.IGNORECASE)


def _singular(text: str) -> str:
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w for w in text.split())


def _text_matches(pred: str, gold: str, fuzzy_threshold: float) -> bool:
    if plain_number(gold):
        return result_number(strip_answer_prefix(pred)) == parse_number(gold)  # "14.80€" for "14.8"
    p, g = _singular(_text(pred)), _singular(_text(gold))
    if not p or not g:
        return False
    if p == g or sorted(p.split()) == sorted(g.split()) and len(g.split()) > 1:
        return True
    where = f" {p} ".find(f" {g} ")
    if where >= 0:
        # "Red coat" for "red"; not "not red", and no other gold number beside it
        raw = normalise_text(_FILLER.sub("", strip_answer_prefix(pred)))
        at = f" {raw} ".find(f" {g} ")
        return at < 0 or not _NEGATED.search(f" {raw} "[:at + 1])
    if re.search(r"\d", p + g):
        return False  # digits match exactly: "open 12 hours" is not "open 24 hours"
    return fuzz.ratio(p, g) >= fuzzy_threshold


def answer_matches(pred: str | None, gold: str, answer_type: str = "text", choices: tuple[str, ...] = (),
                   tolerance: float = TOLERANCE, fuzzy_threshold: float = FUZZY_THRESHOLD) -> bool:
    if pred is None or not str(gold).strip():
        return False
    gold = str(gold)
    if "<OR>" in gold:
        return any(answer_matches(pred, g, answer_type, choices, tolerance, fuzzy_threshold) for g in gold.split("<OR>"))
    if "<AND>" in gold:
        numbers = {parse_number(m) for m in NUMBER.findall(pred.replace("\u2212", "-"))}
        return all(parse_number(g) in numbers if plain_number(g)
                   else answer_matches(pred, g, "text", choices, tolerance, fuzzy_threshold) for g in gold.split("<AND>"))
    if answer_type == "number" and id_like(gold) or answer_type == "text":
        return _text_matches(pred, gold, fuzzy_threshold)
    p = canonical_answer(pred, answer_type, choices, fuzzy_threshold)
    g = canonical_answer(gold, answer_type, choices, fuzzy_threshold)
    if p is None or g is None:
        return False
    if answer_type == "number":
        return abs(p - g) <= tolerance * abs(g) + 1e-9
    return p == g


def vqa_accuracy(pred: str | None, annotators: list[str] | tuple[str, ...]) -> float:
    """VQA accuracy: min(#annotators whose answer `pred` matches / 3, 1)."""
    p = _text(pred) if pred else ""
    return min(sum(p == _text(a) for a in annotators) / 3, 1.0) if p else 0.0


def reply_matches(reply: str | None, gold: str, answer_type: str = "text", choices: tuple[str, ...] = (),
                  tolerance: float = TOLERANCE, fuzzy_threshold: float = FUZZY_THRESHOLD) -> bool:
    return answer_matches(parse_final_answer(reply), gold, answer_type, choices, tolerance, fuzzy_threshold)
