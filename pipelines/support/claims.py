"""Agreement between extraction samples, claim by claim (the v2 `extraction_agreement`).

Sampling the same teacher several times gives texts that differ in wording, order and detail;
what must not differ is what they claim is in the image. Each sentence of the published
extraction is read as visual claims (pipelines/support/lexical.py's terms):

- **the object it is about**: the first thing the sentence names (a noun whose most frequent
  sense is something visible: an animal, artifact, body part, food, natural object, person,
  plant, substance; or a name: "A steam locomotive crosses the bridge", "Madrid's metro ...";
  weight >= `min_weight`). It is backed when another sample names it or a related word
  anywhere in its text (synonyms, narrower words). Things mentioned further into a sentence
  are detail that samples legitimately differ in, and are not demanded;
- **values**: each number or colour bound to its noun ("2 blue particles" -> (blue
  particle, 2)) under the sentence's subject, the words before its first value ("the left
  beaker"). Another sample contradicts the value when one of its sentences names the same
  subject and binds the same noun to a different value, and none binds it to this one.

A sentence is unbacked when the object it is about is named by no other sample, when at
least `novel_share` of what it says (by word weight, four words or more) is in no other
sample, or when a value is contradicted by at least half of the other samples (and by more
than back it). Sentences that
a statement supports are backed (the teacher was told those facts). The score is the share of
backed sentences; the record is rejected below `min_agreement`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from pipelines.support.lexical import SUPPORTED, Term, is_attribute, lexical_support, term_found, terms
from pipelines.support.lexicon import is_measure, is_thing, lemmas, weight, wordnet
from pipelines.support.text import sentences

MIN_WEIGHT = 2.5  # the thing a sentence is about, if this informative, must be named by another sample
NOVEL_SHARE = 0.6  # a sentence most of whose words (by weight) no other sample uses is unbacked


@dataclass(frozen=True)
class Sentence:
    text: str
    terms: tuple[Term, ...]
    subject: frozenset  # words before its first value
    values: tuple[tuple[tuple[str, ...], Term], ...]  # (noun key, value)


def _noun(t: Term) -> bool:
    wn = wordnet()
    if t.value is not None or t.colour:
        return False
    known = [f for f in t.forms if any((f, p) in wn.index for p in "nvar")]
    return not known or any((f, "n") in wn.index for f in known)


def thing(t: Term) -> bool:
    """A visible thing (see the module doc); values, readings ("8h15") and verb forms
    ("minced", "housed") are not."""
    if t.value is not None or t.colour or t.word[:1].isdigit():
        return False
    if t.word.endswith(("ed", "ing")) and any((f, "v") in wordnet().index for f in t.forms):
        return False
    return is_thing(t.word, t.name)



@lru_cache(maxsize=4096)
def read(sentence: str) -> Sentence:
    ts = terms(sentence)
    first = next((i for i, t in enumerate(ts) if is_attribute(t)), len(ts))
    subject = frozenset(f for t in ts[:first] if _noun(t) for f in t.forms)
    values = []
    for i, t in enumerate(ts):
        if t.value is not None:
            if t.value == int(t.value) and 1800 <= t.value <= 2100:
                continue  # a year dates a claim, it is not one
            rest = ts[i + 1:i + 3]
            colour = rest[0].word if rest and rest[0].colour else None
            noun = rest[1 if colour else 0] if len(rest) > (1 if colour else 0) else None
            if t.value == int(t.value) and noun is not None and not is_attribute(noun) and not is_measure(noun.word):
                # a count: the number right before its noun ("2 blue particles")
                key = tuple(sorted(lemmas(noun.word)))
                values.append(((colour, *key) if colour else key, t))
            elif subject and len(subject) <= 3:
                # a value of the sentence's subject: "It lists salt at 7.69", "Bar A ... reaches 8"
                values.append((("of", *sorted(subject)), t))
            continue
        elif t.colour:
            # a colour: of the noun right after it ("a red bus"), else right before ("the bus is red")
            noun = ts[i + 1] if i + 1 < len(ts) and not is_attribute(ts[i + 1]) else \
                ts[i - 1] if i and not is_attribute(ts[i - 1]) else None
            if noun is not None:
                values.append((tuple(sorted(lemmas(noun.word))), t))
    return Sentence(sentence, ts, subject, tuple(values))


@lru_cache(maxsize=1024)
def read_all(text: str) -> tuple[Sentence, ...]:
    return tuple(read(s) for s in sentences(text))


def _value_votes(key: tuple, value: Term, subject: frozenset, other: tuple[Sentence, ...]) -> int:
    """+1: the other sample binds this value; -1: it binds another; 0: it says nothing of it."""
    said = []
    for s in other:
        if key[0] == "of" and s.subject != subject or subject and not subject <= {f for t in s.terms for f in t.forms}:
            continue
        said += [v for k, v in s.values if k == key and (v.value is None) == (value.value is None)]
    if not said:
        return 0
    return 1 if any(v.word == value.word or v.value is not None and v.value == value.value for v in said) else -1


def judge_sentence(sentence: Sentence, others: list[tuple[Sentence, ...]], min_weight: float = MIN_WEIGHT,
                   novel_share: float = NOVEL_SHARE) -> str | None:
    """Why the sentence is unbacked, or None."""
    pool = [tuple(t for s in o for t in s.terms) for o in others]
    about = next((t for t in sentence.terms if thing(t)), None)
    if about is not None and weight(about.word) >= min_weight and not any(term_found(about, p) for p in pool):
        return f"{about.word!r} is in no other sample"
    words = [t for t in sentence.terms if t.value is None]
    if len(words) >= 4:
        unsaid = sum(weight(t.word) for t in words if not any(term_found(t, p) for p in pool))
        if unsaid >= novel_share * sum(weight(t.word) for t in words):
            return f"{unsaid / sum(weight(t.word) for t in words):.0%} of what it says is in no other sample"
    for key, value in sentence.values:
        votes = [_value_votes(key, value, sentence.subject, o) for o in others]
        against, backing = votes.count(-1), votes.count(1)
        if against * 2 >= len(others) and against > backing:
            return f"{value.word} {' '.join(key)}: {against} of {len(others)} other samples say otherwise"
    return None


def claim_agreement(extraction: str, others: list[str], statements: tuple[str, ...] = (),
                    told_support: float = SUPPORTED, min_weight: float = MIN_WEIGHT,
                    novel_share: float = NOVEL_SHARE) -> list[tuple[str, str | None]]:
    """Each sentence of `extraction` with why it is unbacked (None: backed)."""
    read_others = [read_all(o) for o in others]
    told = " ".join(statements)
    out = []
    for s in read_all(extraction):
        if told and lexical_support(s.text, told) >= told_support:
            out.append((s.text, None))
            continue
        out.append((s.text, judge_sentence(s, read_others, min_weight, novel_share)))
    return out
