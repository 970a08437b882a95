"""How well a text supports a claim: the shared measure of statement coverage and of
agreement between extraction samples. The default scorer, `lexical`, is the v2 measure in
pipelines/support/lexical.py (WordNet synonyms, order-free attributes, the question's words not
demanded); this module holds the sentence splitter and the v1 scorers, described here.

A claim (a statement, or one sentence of an extraction) is compared with every window of
the text (each sentence, and each pair of neighbouring sentences). Both sides are reduced to
content tokens: VQA-normalised words, number words as digits, stop words and light verbs
dropped, a light stemmer (beakers -> beaker, containing -> contain). Two measures:

- token recall: the share of the claim's content tokens found in the window (a token of
  five letters or more also counts when rapidfuzz `ratio` with a window token >= 85, so
  colour/color and grey/gray match);
- attribute pairs: each number or colour word with the content tokens on both sides of it
  ("beaker 3", "3 red", "red particle", "butter 7.19", "bar-A blue"); a pair is found when
  its second token follows its first within a few tokens, so a clause in between is allowed
  but a value moved to another item is not. Fuzzy scores cannot see that "3 red and 2 green" became "2 red and 3
  green", or that "a red circle" became "a blue circle"; these pairs do.

- attributes together: the claim's numbers, colours and labels ("Bar A") found in one
  sentence of the window: "Bar A is red and reaches 3" is not backed by "Bar A is red and
  reaches 1. Bar D is blue and reaches 3."

The support score of a window is the least of the three; a claim's support is its best
window's. Pairs and attributes must lie within one sentence; tokens may spread over two. `scorer="partial"` and `scorer="token_set"` use rapidfuzz's `partial_ratio`
and `token_set_ratio` (/100) on the normalised texts instead.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rapidfuzz import fuzz

from pipelines.core.answers import normalise_text
from pipelines.core.letters import UPPER

STOP = set("""
a an the of in on at to for from by with without and or but as is are was were be been being it its it's this that these
those there here which who whom whose what when where how than then so such very also just only into onto over under
above below near next beside between among each every any some all both either neither one's image picture photo scene
shows show showing shown depicts depict depicting features feature featuring displays display displaying contains contain
containing holds hold holding has have having appears appear appearing visible can could would should may might will
i we you he she they them their his her our your my me us
""".split())
COLOUR_WORDS = set("red blue green yellow purple orange black white grey gray brown pink cyan magenta violet gold silver beige navy teal".split())
SCORERS = ("lexical", "recall", "partial", "token_set")
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n+")
_FUZZY_MIN_LEN = 5
_FUZZY_TOKEN = 85
PAIR_SPAN = 4


def _stem(word: str) -> str:
    if not word.isalpha():
        return word
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix in ("ing", "ed"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    if word.endswith("s") and len(word) >= 4 and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


_LABEL = re.compile(rf"(?<=[A-Za-z] )({UPPER})\b(?!['’])")


def keep_labels(text: str) -> str:
    """ "Bar A" -> "Bar labela": a label survives normalisation, which drops "a" as an article."""
    return _LABEL.sub(lambda m: f"label{m.group(1).lower()}", text)
_NONE = {"no": "0", "none": "0"}


@lru_cache(maxsize=4096)
def content_tokens(text: str) -> tuple[str, ...]:
    # "Bar A" keeps its label (normalisation would drop "a" as an article); "no X" is 0 X
    text = keep_labels(text)
    return tuple(_NONE.get(w, _stem(w)) for w in normalise_text(text).split() if w not in STOP)


def attribute_pairs(tokens: tuple[str, ...]) -> set[tuple[str, str]]:
    """Each number or colour word with the tokens on both sides of it."""
    return {(a, b) for a, b in zip(tokens, tokens[1:]) if _attribute(a) or _attribute(b)}


def _attribute(token: str) -> bool:
    return _is_number(token) or token in COLOUR_WORDS


def _is_number(token: str) -> bool:
    return token.replace(".", "", 1).isdigit()


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text or "") if s and s.strip()]


@lru_cache(maxsize=1024)
def windows(text: str) -> tuple[tuple[str, ...], ...]:
    parts = sentences(text)
    return tuple((p,) for p in parts) + tuple(zip(parts, parts[1:]))


def _recall(claim: tuple[str, ...], window: tuple[str, ...]) -> float:
    if not claim:
        return 1.0
    have = set(window)
    long = [w for w in have if len(w) >= _FUZZY_MIN_LEN and not _is_number(w)]
    found = 0
    for token in claim:
        if token in have or (len(token) >= _FUZZY_MIN_LEN and not _is_number(token)
                             and any(fuzz.ratio(token, w) >= _FUZZY_TOKEN for w in long)):
            found += 1
    return found / len(claim)


def window_support(claim: str, window: tuple[str, ...], scorer: str = "recall") -> float:
    text = " ".join(window)
    if scorer == "partial":
        return fuzz.partial_ratio(normalise_text(claim), normalise_text(text)) / 100
    if scorer == "token_set":
        return fuzz.token_set_ratio(" ".join(content_tokens(claim)), " ".join(content_tokens(text))) / 100
    c = content_tokens(claim)
    parts = [content_tokens(sentence) for sentence in window]
    pairs = attribute_pairs(c)
    pair_recall = sum(any(_near(a, b, p) for p in parts) for a, b in pairs) / len(pairs) if pairs else 1.0
    attrs = {t for t in c if _attribute(t) or t.startswith("label")}
    together = max(len(attrs & set(p)) for p in parts) / len(attrs) if attrs else 1.0
    return min(_recall(c, tuple(t for p in parts for t in p)), pair_recall, together)


def _near(a: str, b: str, tokens: tuple[str, ...]) -> bool:
    """`a` followed by `b` within PAIR_SPAN tokens of one sentence: "beaker 3" is found in
    "beaker 100 ml liquid 3" (a clause in between), "butter 7.19" not in "oat 7.19 butter 8.89"."""
    where_b = [j for j, t in enumerate(tokens) if t == b]
    return any(0 < j - i <= PAIR_SPAN for i, t in enumerate(tokens) if t == a for j in where_b)
