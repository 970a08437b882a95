"""Two beakers of liquid with coloured particles: counting and concentration questions."""

from __future__ import annotations

import random
from fractions import Fraction

from pipelines.config.source_config import Difficulty
from pipelines.core import letters
from pipelines.sources.scenes.base import COLOURS, DEFAULT, Family, canvas, count_phrase, font, join_words, letter_of, scaled, shift_count, text_px

PARTICLE_COLOURS = ["red", "blue", "green", "yellow", "purple"]
SIDES = ("left", "right")
CONCENTRATION_CHOICES = ("the left beaker", "the right beaker", "they are equal")


class Beakers(Family):
    name = "beakers"
    scene_sentence = "The image shows two glass beakers of clear liquid side by side on a white background."

    def sample_facts(self, rng: random.Random, difficulty: Difficulty = DEFAULT) -> dict:
        colours = sorted(rng.sample(PARTICLE_COLOURS, rng.randint(2, 3)))
        facts: dict = {"colours": colours}
        for side in SIDES:
            facts[f"{side}.volume"] = rng.choice([50, 100, 150, 200])
            for c in colours:
                facts[f"{side}.{c}"] = rng.randint(0, scaled(7, difficulty))
        return facts

    def draw(self, facts: dict, size: int, rng: random.Random, difficulty: Difficulty = DEFAULT):
        img, d = canvas(size, COLOURS["white"])
        w, top, bottom = size * 0.34, size * 0.18, size * 0.82
        r = max(3, size // 90)
        for i, side in enumerate(SIDES):
            x0 = size * (0.08 + 0.5 * i)
            x1 = x0 + w
            level = bottom - (bottom - top) * facts[f"{side}.volume"] / 220
            d.rectangle([x0, level, x1, bottom], fill=(205, 228, 245))
            d.line([(x0, top), (x0, bottom), (x1, bottom), (x1, top)], fill=(90, 90, 90), width=max(2, size // 170))
            d.text((x0, bottom + size * 0.03), f"{facts[f'{side}.volume']} mL", fill=COLOURS["black"], font=font(text_px(max(10, size // 22), difficulty)))
            for c in facts["colours"]:
                for _ in range(facts[f"{side}.{c}"]):
                    px = rng.uniform(x0 + 2 * r, x1 - 2 * r)
                    py = rng.uniform(level + 2 * r, bottom - 2 * r)
                    d.ellipse([px - r, py - r, px + r, py + r], fill=COLOURS[c], outline=COLOURS["black"])
        return img

    def turn_specs(self, facts, rng, k):
        specs = [("concentration", {}, CONCENTRATION_CHOICES)]
        for side in SIDES:
            for c in facts["colours"]:
                specs.append(("count", {"side": side, "colour": c}, ()))
            a, b = rng.sample(facts["colours"], 2)
            specs.append(("more", {"side": side, "a": a, "b": b}, ()))
        rng.shuffle(specs)
        return specs[:k]

    def question(self, template, args):
        if template == "count":
            return f"How many {args['colour']} particles are in the {args['side']} beaker?", "number"
        if template == "more":
            return f"In the {args['side']} beaker, are there more {args['a']} particles than {args['b']} particles?", "yesno"
        return "Which beaker has the higher concentration of particles?", "choice"

    def solve(self, template, args, facts, choices):
        if template == "count":
            return str(facts[f"{args['side']}.{args['colour']}"])
        if template == "more":
            s = args["side"]
            return "yes" if facts[f"{s}.{args['a']}"] > facts[f"{s}.{args['b']}"] else "no"
        conc = {s: Fraction(sum(facts[f"{s}.{c}"] for c in facts["colours"]), facts[f"{s}.volume"]) for s in SIDES}
        option = CONCENTRATION_CHOICES[2] if conc["left"] == conc["right"] else (
            CONCENTRATION_CHOICES[0] if conc["left"] > conc["right"] else CONCENTRATION_CHOICES[1])
        return letter_of(choices, option)

    def describe(self, facts):
        out = []
        for side in SIDES:
            keys = (f"{side}.volume", *(f"{side}.{c}" for c in facts["colours"]))
            parts = [count_phrase(facts[f"{side}.{c}"], f"{c} particle") for c in facts["colours"] if f"{side}.{c}" in facts]
            out.append((keys, f"The {side} beaker holds {facts[f'{side}.volume']} mL of liquid containing {join_words(parts)}."))
        return out

    def statement(self, template, args, answer, choices):
        if template == "count":
            return f"The {args['side']} beaker contains {count_phrase(int(answer), args['colour'] + ' particle')}."
        if template == "more":
            verb = "has" if answer == "yes" else "does not have"
            return f"The {args['side']} beaker {verb} more {args['a']} particles than {args['b']} particles."
        option = choices[letters.index(answer)]
        if option == CONCENTRATION_CHOICES[2]:
            return "Both beakers have the same concentration of particles."
        return f"{option[0].upper() + option[1:]} has the higher concentration of particles."

    def focus(self, template, args):
        if template == "count":
            return f"the {args['colour']} particles in the {args['side']} beaker"
        if template == "more":
            return f"the {args['a']} and {args['b']} particles in the {args['side']} beaker"
        return "the number of particles and the liquid volume in each beaker"

    def miscount(self, facts, rng):
        key = rng.choice([f"{s}.{c}" for s in SIDES for c in facts["colours"]])
        new = shift_count(facts[key], rng)
        return {**facts, key: new}, f"{key}: {facts[key]} -> {new}"

    def wrong_colour(self, facts, rng):
        options = [(s, a, b) for s in SIDES for a in facts["colours"] for b in facts["colours"]
                   if a < b and facts[f"{s}.{a}"] != facts[f"{s}.{b}"]]
        if not options:
            return self.miscount(facts, rng)
        s, a, b = rng.choice(options)
        return {**facts, f"{s}.{a}": facts[f"{s}.{b}"], f"{s}.{b}": facts[f"{s}.{a}"]}, f"{s}: {a} and {b} swapped"
