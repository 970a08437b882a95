"""A road or shop sign with a word and a number: reading text, colour and shape."""

from __future__ import annotations

import math
import random

from pipelines.config.source_config import Difficulty
from pipelines.core import letters
from pipelines.sources.scenes.base import COLOURS, DEFAULT, Family, canvas, choice_options, font, letter_of, shift_count, text_px

WORDS = ["EXIT", "STOP", "OPEN", "PARKING", "SCHOOL", "HOTEL", "GARAGE", "MUSEUM", "LIBRARY", "PLATFORM"]
SIGN_COLOURS = ["red", "blue", "green", "yellow", "orange", "purple"]
SHAPES = ["rectangle", "octagon", "circle", "diamond"]


class Sign(Family):
    name = "sign"
    scene_sentence = "The image shows a single sign on a pale sky-blue background."

    def sample_facts(self, rng: random.Random, difficulty: Difficulty = DEFAULT) -> dict:
        bg = rng.choice(SIGN_COLOURS)
        return {
            "word": rng.choice(WORDS),
            "number": rng.randint(1, 99),
            "shape": rng.choice(SHAPES),
            "bg": bg,
            "ink": "black" if bg in ("yellow", "orange") else "white",
        }

    def draw(self, facts, size, rng, difficulty=DEFAULT):
        img, d = canvas(size, (215, 232, 245))
        c, r = size / 2, size * 0.4
        fill = COLOURS[facts["bg"]]
        if facts["shape"] == "rectangle":
            d.rectangle([c - r, c - r * 0.6, c + r, c + r * 0.6], fill=fill)
        elif facts["shape"] == "circle":
            d.ellipse([c - r, c - r, c + r, c + r], fill=fill)
        else:
            n, phase = (8, math.pi / 8) if facts["shape"] == "octagon" else (4, 0.0)
            d.polygon([(c + r * math.cos(phase + 2 * math.pi * i / n), c + r * math.sin(phase + 2 * math.pi * i / n)) for i in range(n)], fill=fill)
        text = f"{facts['word']}\n{facts['number']}"
        size_px = text_px(max(12, int(size * (0.11 if len(facts["word"]) <= 6 else 0.075))), difficulty)
        d.multiline_text((c, c), text, fill=COLOURS[facts["ink"]], font=font(size_px), anchor="mm", align="center")
        return img

    def turn_specs(self, facts, rng, k):
        specs = [
            ("word", {}, ()),
            ("number", {}, ()),
            ("colour", {}, choice_options(rng, facts["bg"], SIGN_COLOURS)),
            ("shape", {}, ()),
        ]
        rng.shuffle(specs)
        return specs[:k]

    def question(self, template, args):
        return {
            "word": ("What word is written on the sign?", "text"),
            "number": ("What number is shown on the sign?", "number"),
            "colour": ("What is the background colour of the sign?", "choice"),
            "shape": ("What shape is the sign?", "text"),
        }[template]

    def solve(self, template, args, facts, choices):
        if template == "colour":
            return letter_of(choices, facts["bg"])
        return str(facts[template])  # "word", "number" and "shape" are fact keys

    def describe(self, facts):
        out = []
        if "shape" in facts and "bg" in facts:
            out.append((("shape", "bg"), f"In the centre stands a {facts['bg']} sign shaped like a {facts['shape']}."))
        if "word" in facts and "number" in facts:
            out.append((("word", "number", "ink"), f"It reads \"{facts['word']}\" in large {facts['ink']} capital letters, with the number {facts['number']} below."))
        return out

    def statement(self, template, args, answer, choices):
        if template == "colour":
            return f"The sign's background is {choices[letters.index(answer)]}."
        return {
            "word": f"The sign says \"{answer}\".",
            "number": f"The number {answer} is shown on the sign.",
            "shape": f"The sign is shaped like a {answer}.",
        }[template]

    def focus(self, template, args):
        return {
            "word": "the lettering on the sign",
            "number": "the digits on the sign",
            "colour": "the colour of the sign",
            "shape": "the outline of the sign",
        }[template]

    def alternatives(self, template, args, facts):
        return list(WORDS if template == "word" else SHAPES)

    def miscount(self, facts, rng):
        new = max(1, shift_count(facts["number"], rng))
        if new == facts["number"]:
            new += 1
        return {**facts, "number": new}, f"number: {facts['number']} -> {new}"

    def wrong_colour(self, facts, rng):
        new = rng.choice([c for c in SIGN_COLOURS if c != facts["bg"]])
        return {**facts, "bg": new}, f"bg: {facts['bg']} -> {new}"
