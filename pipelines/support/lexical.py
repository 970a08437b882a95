"""Support measure v2 ("lexical", the default scorer): how well a text supports a claim,
on real model prose, offline, with no model.

Both sides become terms: VQA-normalised words without stop words, possessives and units
unified ("London's" -> london, "km" -> kilometre), each with its WordNet lemmas
(pipelines/support/lexicon.py). A claim's term is found in a window of the text (one sentence, or two
neighbouring ones) when the window holds
- the same lemma, a synonym, a narrower word ("sparrow" for "bird"), a word one level broader
  ("person" for "player"), a derived form ("inauguration" for "inaugurated") or another
  spelling ("donut"; rapidfuzz `ratio` >= 85 for words of 5 letters or more);
- for numbers: the same value (450,000 = 450000 = 450k is not guessed; 1.50 = 1.5).
Words of the claim that its question contributes count a quarter (`QUESTION_WEIGHT`), and the
word the question asks for counts nothing ("The brand featured in this advertisement is
Subway", asked "What brand is featured in this advertisement?", needs "Subway" above all);
numbers and colours count in full. A statement made only of the question's words (a yes/no
question's) is demanded in full.

The score of a window is the weighted share of the claim's terms found (a word weighs more the
rarer it is: "Kermit" 4.9, "show" 2.3, a number 6), times the share of its attributes bound
right: each number or colour word of the claim is paired with its noun (the next content word,
else the one before: "3 dogs", "the dog is black"); where the window names that noun (or a
related word), the value bound to it there (the nearest value before it, else after it, within
three words) must be the claim's. So "a black dog" supports "the dog is black", "3 red and 2
green" does not support "2 red", and "a blue circle and a red square" does not support "a red
circle". A claim's support is its best window's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache

from rapidfuzz import fuzz

from pipelines.core.answers import normalise_text
from pipelines.support.lexicon import collocation, is_name, lemmas, mostly_noun, opposites, related, weight
from pipelines.support.text import COLOUR_WORDS, SCORERS, STOP, content_tokens, keep_labels, sentences, window_support, windows

PAIRS = True
SPAN = 3  # words between a value and its noun
QUESTION_WEIGHT = 0.25  # a word the question contributes counts this much
SUPPORTED = 0.8  # a text backs a claim at this support or above (coverage, agreement, the truth checks)
_UNITS = {"km": "kilometre", "kilometer": "kilometre", "kilometers": "kilometre", "kms": "kilometre", "m": "metre",
          "meter": "metre", "meters": "metre", "cm": "centimetre", "mm": "millimetre", "kg": "kilogram", "kgs": "kilogram",
          "g": "gram", "lb": "pound", "lbs": "pound", "ml": "millilitre", "l": "litre", "liter": "litre", "liters": "litre",
          "percent": "%", "per cent": "%", "hr": "hour", "hrs": "hour", "min": "minute", "mins": "minute",
          "sec": "second", "secs": "second", "colour": "color", "grey": "gray"}
_MORE_STOP = {"s", "about", "around", "approximately", "roughly", "nearly", "almost", "over", "also", "called", "named",
              "labeled", "labelled", "titled", "reads", "read", "says", "say", "written", "text", "word", "words",
              "through", "throughout", "across", "within", "during", "while", "than", "out", "up", "down", "off",
              "seen", "see", "seems", "seem", "appear", "appears", "located", "positioned", "placed", "there"}
# where things are is a fact to check, not a stop word
_PLACES = {"above", "below", "under", "over", "near", "next", "beside", "between", "behind", "left", "right", "top",
           "bottom", "front", "back", "inside", "outside", "beneath", "underneath", "atop"}
_STOP = (STOP | _MORE_STOP) - _PLACES
_POSSESSIVE = re.compile(r"(\w)['’]s\b")
_CONTRACTED = {"theyre", "theyve", "youd", "youll", "youre", "youve", "weve", "were", "ive", "id", "ill", "hes", "shes",
               "whats", "thats", "theres", "lets", "wouldnt", "couldnt", "shouldnt", "wasnt", "werent", "hasnt", "havent"}
_WH = re.compile(r"\b(?:what|which|whose)\s+(?:kind\s+of\s+|type\s+of\s+)?([a-z]+)", re.IGNORECASE)
_TIME = re.compile(r"\b(\d{1,2}):(\d{2})\b")
_PERCENT = re.compile(r"(\d)\s*%")


@dataclass(frozen=True)
class Term:
    word: str
    forms: frozenset  # lemmas
    value: float | None  # numbers
    colour: bool
    name: bool = False  # a proper name: "Kyoto", "Los Angeles"


@lru_cache(maxsize=8192)
def terms(text: str) -> tuple[Term, ...]:
    text = _PERCENT.sub(r"\1 percent", _POSSESSIVE.sub(r"\1", text or ""))
    text = _TIME.sub(r"\1h\2", text)  # 12:15 is one reading, not the numbers 12 and 15
    text = keep_labels(text)
    # capitalised inside a sentence, or a name WordNet knows
    names = {m.lower() for m in re.findall(r"(?<=[^.!?\s]) +([A-Z][a-z]+)", text)}
    out = []
    for w in _joined(normalise_text(text).split()):
        w = _UNITS.get(w.lstrip("$€£¥"), w.lstrip("$€£¥")) if w[:1] in "$€£¥" and len(w) > 1 else _UNITS.get(w, w)
        if w in _STOP or w in _CONTRACTED or not any(c.isalnum() for c in w):
            continue
        value = 0.0 if w in ("no", "none") else _number(w)  # "no blue particles" is a count
        out.append(Term(w, frozenset({w}) if value is not None else lemmas(w), value, w in COLOUR_WORDS,
                        value is None and (w in names or is_name(w))))
    return tuple(out)


def _joined(words: list[str]) -> list[str]:
    """Words with WordNet's collocations joined: a "bird of paradise" flower is no bird."""
    out, i = [], 0
    while i < len(words):
        for n in (4, 3, 2):
            if i + n <= len(words) and not any(w[:1].isdigit() for w in words[i:i + n]):
                joined = collocation(words[i:i + n])
                if joined and (n > 2 or words[i] not in _STOP):
                    out.append(joined)
                    i += n
                    break
        else:
            out.append(words[i])
            i += 1
    return out


def _number(word: str) -> float | None:
    try:
        return float(word)
    except ValueError:
        return None


@lru_cache(maxsize=65536)
def _expansion(word: str) -> frozenset:
    return related(word)


def term_found(term: Term, window: tuple[Term, ...]) -> bool:
    """Is `term` in `window`: the same number, or a word of the same meaning (a synonym, a
    related form, or a near spelling of a long word)?"""
    if term.value is not None:
        return any(t.value == term.value for t in window)
    expansion = set().union(*(_expansion(f) for f in term.forms)) | term.forms
    for t in window:
        if t.value is None and (t.forms & expansion or len(term.word) >= 5 and len(t.word) >= 5
                                and fuzz.ratio(term.word, t.word) >= 85):
            return True
    return False


def is_attribute(t: Term) -> bool:
    """A number or a colour word (what a claim says about its noun)."""
    return t.value is not None or t.colour


def _same_kind(a: Term, b: Term) -> bool:
    return (a.value is not None) == (b.value is not None) and a.colour == b.colour


def _partner(claim: tuple[Term, ...], i: int) -> Term | None:
    """The noun a value belongs to: the next word ("3 dogs"), else the one before ("the dog is
    black"); None when that word is no noun ("opened in 1863": a date, not an attribute)."""
    after = [t for t in claim[i + 1:i + 3] if not is_attribute(t)]
    before = [t for t in claim[max(0, i - SPAN):i] if not is_attribute(t)]
    near = after[0] if after else before[-1] if before else None
    return near if near is not None and mostly_noun(near.word) else None


def _bound(value: Term, noun: Term, sentence: tuple[Term, ...], colour: Term | None = None) -> bool | None:
    """Is `value` bound to `noun` in the sentence? None when the sentence does not name the
    noun. `colour`: a count's noun is the coloured one ("2 red particles", not "2 green particles")."""
    places = [j for j, t in enumerate(sentence) if not is_attribute(t) and term_found(noun, (t,))
              and (colour is None or j and sentence[j - 1].word == colour.word)]
    if not places:
        return None
    for j in places:
        # the values written right before the noun ("3 red particles"), else right after it
        # ("the circle is blue", "runs from 0 to 10"), up to the next word that is not a value
        before = _run(reversed(sentence[max(0, j - SPAN):j]), value)
        near = before or _run(sentence[j + 1:j + 1 + SPAN], value)
        if any(term_found(value, (t,)) for t in near):
            return True
    return False


def _run(terms_: Iterable[Term], value: Term) -> list[Term]:
    out = []
    for t in terms_:
        if not is_attribute(t):
            break
        if _same_kind(t, value):
            out.append(t)
    return out


def window_score(claim: tuple[Term, ...], parts: tuple[tuple[Term, ...], ...], dropped: frozenset = frozenset(),
                 asked: frozenset = frozenset()) -> float:
    flat = tuple(t for p in parts for t in p)
    def w(t: Term) -> float:
        if t.word in asked and not is_attribute(t):
            return 0.0  # what the question asks for ("What brand ...?"): the answer names it
        return weight(t.word) * (QUESTION_WEIGHT if t.word in dropped and not is_attribute(t) else 1.0)

    total = sum(map(w, claim))
    found = [t for t in claim if term_found(t, flat)]
    recall = sum(map(w, found)) / total
    words = {f for t in flat for f in t.forms}
    if any(t not in found and opposites(t.word) & words for t in claim):
        return 0.0  # "faces left" for "faces the right side"
    attributes = [(i, t) for i, t in enumerate(claim) if is_attribute(t)]
    if not attributes or recall == 0:
        return recall
    # the claim's subject (its weightiest other word): a value must stand in its sentence
    named = [t for t in found if not is_attribute(t) and t.word not in dropped]
    subject = max(named, key=lambda t: weight(t.word)) if named else None
    bound = 0
    for i, value in attributes:
        noun = _partner(claim, i)
        colour = claim[i + 1] if value.value is not None and i + 1 < len(claim) and claim[i + 1].colour else None
        ok = False
        for sentence in parts:
            if not term_found(value, sentence) or subject is not None and not term_found(subject, sentence):
                continue
            if subject is not None and subject.name and not _named_before(value, subject, sentence):
                continue
            b = _bound(value, noun, sentence, colour) if noun is not None else None
            if b is None or b:
                ok = True
                break
        bound += ok
    return recall * bound / len(attributes)


def _named_before(value: Term, subject: Term, sentence: tuple[Term, ...]) -> bool:
    """The name nearest before some occurrence of the value is the claim's subject: "Kyoto ...
    11 km ... Los Angeles ... 28 km" does not give Kyoto 28 km."""
    for j, t in enumerate(sentence):
        if term_found(value, (t,)) and t.value is not None or t.colour and term_found(value, (t,)):
            names = [u for u in sentence[:j] if u.name]
            if not names or term_found(subject, (names[-1],)):
                return True
    return False


@lru_cache(maxsize=1024)
def _windows(text: str) -> tuple[tuple[tuple[Term, ...], ...], ...]:
    parts = [terms(s) for s in sentences(text)]
    return tuple((p,) for p in parts) + (tuple(zip(parts, parts[1:])) if PAIRS else ())


def lexical_support(claim: str, text: str, question: str | None = None) -> float:
    c = terms(claim)
    if not c:
        return 1.0
    dropped = frozenset(f for t in terms(question or "") for f in (t.word, *t.forms))
    dropped = frozenset(t.word for t in c if t.word in dropped or t.forms & dropped)
    target = _WH.search(question or "")
    target_forms = lemmas(target.group(1).lower()) | {target.group(1).lower()} if target else frozenset()
    asked = frozenset(t.word for t in c if t.word in dropped and t.forms & target_forms)
    if all(t.word in dropped for t in c):
        dropped = asked = frozenset()  # a yes/no question's statement: all of it is the claim
    best = 0.0
    for w in _windows(text):
        best = max(best, window_score(c, w, dropped, asked))
        if best >= 1.0:
            break
    return best


def support(claim: str, text: str, scorer: str = "lexical", question: str | None = None) -> float:
    """How well `text` supports `claim`, in [0, 1]: the best window's score. `lexical` is
    the v2 measure (above; `question`: words it contributes are not demanded);
    the others are v1, described in pipelines/support/text.py."""
    if scorer not in SCORERS:
        raise ValueError(f"scorer must be one of {SCORERS}, got {scorer!r}")
    if scorer == "lexical":
        return lexical_support(claim, text, question)
    if not content_tokens(claim):
        return 1.0
    best = 0.0
    for w in windows(text):
        best = max(best, window_support(claim, w, scorer))
        if best >= 1.0:  # no window scores higher
            break
    return best
