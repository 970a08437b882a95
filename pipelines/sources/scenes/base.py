"""What every synthetic scene family provides, and drawing helpers they share.

A family turns a random generator into ground-truth `facts` (a flat dict of named values),
draws them, asks questions about them and answers those questions *from the facts*. Since
answers are recomputed from facts, the oracle teacher can corrupt a fact (a miscount, a
wrong colour) and every downstream answer changes the way a real model's would.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from pipelines.config.source_config import Difficulty
from pipelines.core import letters

DEFAULT = Difficulty()

COLOURS = {
    "red": (214, 39, 40),
    "blue": (31, 119, 180),
    "green": (44, 160, 44),
    "yellow": (235, 200, 20),
    "purple": (148, 103, 189),
    "orange": (255, 127, 14),
    "black": (20, 20, 20),
    "white": (250, 250, 250),
}


@lru_cache(maxsize=32)
def font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def text_px(px: float, difficulty: Difficulty) -> int:
    """A font size in pixels, scaled by the difficulty's font_scale (never below 7)."""
    return max(7, int(px * difficulty.font_scale))


def scaled(n: int, difficulty: Difficulty, at_least: int = 1) -> int:
    """A maximum count scaled by the difficulty's `objects` knob."""
    return max(at_least, round(n * difficulty.objects))


_SKETCHING: ContextVar[bool] = ContextVar("sketching", default=False)


class _Blank:
    """Stands for an image and its drawing context while sketching: it has a size and
    ignores everything drawn on it."""

    def __init__(self, size: tuple[int, int]):
        self.size = size

    def copy(self) -> "_Blank":
        return self

    def __getattr__(self, name):
        return _ignore


def _ignore(*args, **kwargs) -> None:
    return None


@contextmanager
def sketching():
    """Inside, scenes are drawn without pixels: `canvas` hands out blanks that ignore every
    drawing call, while the drawing code still makes all its random choices. What follows a
    drawing in a scene's random stream (its questions) then comes out as it would after the
    real drawing, at a fraction of the cost (deduplication needs facts and questions only).
    A scene family must draw through `canvas` and `draw_on`, and must not let what it
    measures on an image decide a random choice (tests/sources/test_synthetic.py checks
    every family)."""
    token = _SKETCHING.set(True)
    try:
        yield
    finally:
        _SKETCHING.reset(token)


def canvas(size: int, colour: tuple[int, int, int]):
    """A new square image and its drawing context (blanks while sketching)."""
    if _SKETCHING.get():
        blank = _Blank((size, size))
        return blank, blank
    img = Image.new("RGB", (size, size), colour)
    return img, ImageDraw.Draw(img)


def draw_on(img):
    return img if isinstance(img, _Blank) else ImageDraw.Draw(img)


def add_clutter(img: Image.Image, rng: random.Random, clutter: float) -> Image.Image:
    """Speckle and stray faint lines over the whole image, blended so that nothing the
    questions ask about disappears; `clutter` in [0, 1] sets how much."""
    if clutter <= 0:
        return img
    w, h = img.size
    layer = img.copy()
    d = draw_on(layer)
    for _ in range(int(1500 * clutter * w * h / 512**2)):
        x, y, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(0.5, 2.0)
        d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(rng.randint(60, 200) for _ in range(3)))
    for _ in range(int(30 * clutter)):
        d.line([(rng.uniform(0, w), rng.uniform(0, h)), (rng.uniform(0, w), rng.uniform(0, h))],
               fill=tuple(rng.randint(120, 220) for _ in range(3)), width=1)
    return img if isinstance(img, _Blank) else Image.blend(img, layer, 0.35 + 0.3 * clutter)


def add_distractors(img: Image.Image, rng: random.Random, n: int) -> None:
    """`n` small grey cross marks: objects that no question asks about."""
    d = draw_on(img)
    w, h = img.size
    r = max(3, w // 80)
    for _ in range(n):
        x, y = rng.uniform(r, w - r), rng.uniform(r, h - r)
        d.line([(x - r, y - r), (x + r, y + r)], fill=(128, 128, 128), width=2)
        d.line([(x - r, y + r), (x + r, y - r)], fill=(128, 128, 128), width=2)


def distractor_sentence(n: int) -> str:
    return f"{count_phrase(n, 'small grey cross mark')[0].upper()}{count_phrase(n, 'small grey cross mark')[1:]} {'is' if n == 1 else 'are'} scattered over the image; they are not part of the scene."


def letter_of(choices: tuple[str, ...], option: str) -> str:
    """The letter of `option`; KeyError when the facts point at no offered option (as when
    a misperceived colour is not among the choices): the question cannot be answered."""
    if option not in choices:
        raise KeyError(option)
    return letters.letter(choices.index(option))


def choice_options(rng: random.Random, correct: str, pool: list[str], k: int = 4) -> tuple[str, ...]:
    """`k` distinct options including `correct`, shuffled deterministically."""
    others = [p for p in pool if p != correct]
    options = [correct] + rng.sample(others, min(k - 1, len(others)))
    rng.shuffle(options)
    return tuple(options)


def count_phrase(n: int, noun: str) -> str:
    if n == 0:
        return f"no {noun}s"
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def join_words(items: list[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


class Family:
    """Interface of a scene family. `template` names a question kind; `args` its
    parameters; `facts` the ground truth (possibly corrupted by the oracle)."""

    name: str
    scene_sentence: str  # how an extraction opens

    def sample_facts(self, rng: random.Random, difficulty: Difficulty = DEFAULT) -> dict:
        raise NotImplementedError

    def draw(self, facts: dict, size: int, rng: random.Random, difficulty: Difficulty = DEFAULT):
        raise NotImplementedError

    def turn_specs(self, facts: dict, rng: random.Random, k: int) -> list[tuple[str, dict, tuple[str, ...]]]:
        """Up to `k` distinct (template, args, choices) to ask about this scene."""
        raise NotImplementedError

    def question(self, template: str, args: dict) -> tuple[str, str]:
        """The question text and its answer type ("choice", "yesno", "number", "text")."""
        raise NotImplementedError

    def solve(self, template: str, args: dict, facts: dict, choices: tuple[str, ...]) -> str:
        """The answer from `facts`; raises KeyError when a needed fact is unknown."""
        raise NotImplementedError

    def describe(self, facts: dict) -> list[tuple[tuple[str, ...], str]]:
        """Sentences of a fine-grained description, each with the fact keys it states."""
        raise NotImplementedError

    def statement(self, template: str, args: dict, answer: str, choices: tuple[str, ...]) -> str:
        raise NotImplementedError

    def focus(self, template: str, args: dict) -> str:
        raise NotImplementedError

    def alternatives(self, template: str, args: dict, facts: dict) -> list[str]:
        """Plausible values for a text answer of this template (to make a wrong answer)."""
        return []

    def miscount(self, facts: dict, rng: random.Random) -> tuple[dict, str]:
        """Facts with one count off by a little, and a note of what changed."""
        raise NotImplementedError

    def wrong_colour(self, facts: dict, rng: random.Random) -> tuple[dict, str]:
        raise NotImplementedError


def shift_count(value: int, rng: random.Random) -> int:
    """A plausible miscount: off by one or two, never negative, never the same."""
    options = [v for v in (value - 2, value - 1, value + 1, value + 2) if v >= 0]
    return rng.choice(options)
