"""Coloured shapes scattered on a grid: counting, presence and majority questions."""

from __future__ import annotations

import math
import random

from pipelines.config.source_config import Difficulty
from pipelines.sources.scenes.base import COLOURS, DEFAULT, Family, canvas, count_phrase, scaled, shift_count

SHAPE_COLOURS = ["red", "blue", "green", "yellow"]
SHAPES = ["circle", "square", "triangle"]


def _key(colour: str, shape: str) -> str:
    return f"count.{colour}.{shape}"


class Shapes(Family):
    name = "shapes"
    scene_sentence = "The image shows flat coloured shapes scattered over a light grey background."

    def sample_facts(self, rng: random.Random, difficulty: Difficulty = DEFAULT) -> dict:
        facts = {_key(c, s): 0 for c in SHAPE_COLOURS for s in SHAPES}
        for c, s in rng.sample([(c, s) for c in SHAPE_COLOURS for s in SHAPES], rng.randint(2, 4)):
            facts[_key(c, s)] = rng.randint(1, scaled(4, difficulty))
        return facts

    def draw(self, facts, size, rng, difficulty=DEFAULT):
        img, d = canvas(size, (236, 236, 236))
        items = [(c, s) for c in SHAPE_COLOURS for s in SHAPES for _ in range(facts[_key(c, s)])]
        grid = max(6, math.ceil(math.sqrt(len(items) * 1.4)))
        cell = size / grid
        cells = rng.sample(range(grid * grid), len(items))
        for (c, s), idx in zip(items, cells):
            cx, cy = (idx % grid + 0.5) * cell, (idx // grid + 0.5) * cell
            r = cell * rng.uniform(0.25, 0.38)
            box = [cx - r, cy - r, cx + r, cy + r]
            if s == "circle":
                d.ellipse(box, fill=COLOURS[c], outline=COLOURS["black"])
            elif s == "square":
                d.rectangle(box, fill=COLOURS[c], outline=COLOURS["black"])
            else:
                d.polygon([(cx, cy - r), (cx + r, cy + r), (cx - r, cy + r)], fill=COLOURS[c], outline=COLOURS["black"])
        return img

    def _totals(self, facts):
        return {s: sum(facts[_key(c, s)] for c in SHAPE_COLOURS) for s in SHAPES}

    def turn_specs(self, facts, rng, k):
        present = [(c, s) for c in SHAPE_COLOURS for s in SHAPES if facts[_key(c, s)]]
        absent = [(c, s) for c in SHAPE_COLOURS for s in SHAPES if not facts[_key(c, s)]]
        specs = [("count", {"colour": c, "shape": s}, ()) for c, s in present]
        specs += [("any", {"colour": c, "shape": s}, ()) for c, s in rng.sample(present, 1) + rng.sample(absent, 1)]
        totals = sorted(self._totals(facts).values())
        if totals[-1] > totals[-2]:
            specs.append(("most", {}, ()))
        rng.shuffle(specs)
        return specs[:k]

    def question(self, template, args):
        if template == "count":
            return f"How many {args['colour']} {args['shape']}s are there in the image?", "number"
        if template == "any":
            return f"Is there a {args['colour']} {args['shape']} in the image?", "yesno"
        return "Which kind of shape appears most often in the image?", "text"

    def solve(self, template, args, facts, choices):
        if template == "count":
            return str(facts[_key(args["colour"], args["shape"])])
        if template == "any":
            return "yes" if facts[_key(args["colour"], args["shape"])] > 0 else "no"
        totals = self._totals(facts)
        return max(totals, key=totals.get)

    def describe(self, facts):
        out, zero = [], []
        for s in SHAPES:
            for c in SHAPE_COLOURS:
                key = _key(c, s)
                if key not in facts:
                    continue
                if facts[key]:
                    out.append(((key,), f"There {'is' if facts[key] == 1 else 'are'} {count_phrase(facts[key], f'{c} {s}')}."))
                else:
                    zero.append(key)
        out.append((tuple(zero), "No other shapes or colours appear."))
        return out

    def statement(self, template, args, answer, choices):
        if template == "count":
            n = int(answer)
            return f"There {'is' if n == 1 else 'are'} {count_phrase(n, args['colour'] + ' ' + args['shape'])} in the image."
        if template == "any":
            return f"There {'is a' if answer == 'yes' else 'is no'} {args['colour']} {args['shape']} in the image."
        return f"The {answer} is the shape that appears most often."

    def focus(self, template, args):
        if template in ("count", "any"):
            return f"the {args['colour']} {args['shape']}s"
        return "how many shapes of each kind there are"

    def alternatives(self, template, args, facts):
        return list(SHAPES)

    def miscount(self, facts, rng):
        key = rng.choice([k for k, v in facts.items() if v])
        new = max(1, shift_count(facts[key], rng))
        if new == facts[key]:
            new += 1
        return {**facts, key: new}, f"{key}: {facts[key]} -> {new}"

    def wrong_colour(self, facts, rng):
        key = rng.choice([k for k, v in facts.items() if v])
        _, colour, shape = key.split(".")
        other = _key(rng.choice([c for c in SHAPE_COLOURS if c != colour]), shape)
        return {**facts, key: 0, other: facts[other] + facts[key]}, f"{key} described as {other}"
