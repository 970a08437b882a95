"""A labelled bar chart: reading values, comparing bars, naming colours."""

from __future__ import annotations

import random

from pipelines.config.source_config import Difficulty
from pipelines.core import letters
from pipelines.sources.scenes.base import COLOURS, DEFAULT, Family, canvas, choice_options, font, letter_of, scaled, shift_count, text_px

BAR_COLOURS = ["red", "blue", "green", "orange", "purple"]
TITLES = ["Apples sold", "Rainy days", "Books read", "Visitors", "Goals scored"]


class BarChart(Family):
    name = "barchart"
    scene_sentence = "The image is a bar chart with a title, a numbered vertical axis and labelled bars."

    def sample_facts(self, rng: random.Random, difficulty: Difficulty = DEFAULT) -> dict:
        labels = list("ABCDEFGH")[: rng.randint(3, min(8, scaled(5, difficulty, at_least=3)))]
        facts: dict = {"labels": labels, "title": rng.choice(TITLES)}
        for label in labels:
            facts[f"{label}.value"] = rng.randint(1, 10)
            facts[f"{label}.colour"] = rng.choice(BAR_COLOURS)
        return facts

    def draw(self, facts, size, rng, difficulty=DEFAULT):
        img, d = canvas(size, COLOURS["white"])
        f = font(text_px(max(10, size // 24), difficulty))
        left, right, top, bottom = size * 0.14, size * 0.95, size * 0.14, size * 0.86
        d.text((left, size * 0.03), facts["title"], fill=COLOURS["black"], font=font(text_px(max(12, size // 18), difficulty)))
        d.line([(left, top), (left, bottom), (right, bottom)], fill=COLOURS["black"], width=2)
        unit = (bottom - top) / 10
        for v in range(0, 11, 2):
            y = bottom - v * unit
            d.line([(left - 5, y), (left, y)], fill=COLOURS["black"], width=2)
            d.text((left - size * 0.08, y - size * 0.02), str(v), fill=COLOURS["black"], font=f)
        slot = (right - left) / len(facts["labels"])
        for i, label in enumerate(facts["labels"]):
            x0 = left + slot * (i + 0.2)
            x1 = left + slot * (i + 0.8)
            d.rectangle([x0, bottom - facts[f"{label}.value"] * unit, x1, bottom], fill=COLOURS[facts[f"{label}.colour"]])
            d.text(((x0 + x1) / 2 - size * 0.015, bottom + size * 0.02), label, fill=COLOURS["black"], font=f)
        return img

    def turn_specs(self, facts, rng, k):
        labels = facts["labels"]
        specs = [("value", {"label": lb}, ()) for lb in labels]
        a, b = rng.sample(labels, 2)
        if facts[f"{a}.value"] != facts[f"{b}.value"]:
            specs.append(("taller", {"a": a, "b": b}, ()))
        c = rng.choice(labels)
        specs.append(("colour", {"label": c}, choice_options(rng, facts[f"{c}.colour"], BAR_COLOURS)))
        values = sorted(facts[f"{lb}.value"] for lb in labels)
        if values[-1] > values[-2]:
            specs.append(("highest", {}, ()))
        rng.shuffle(specs)
        return specs[:k]

    def question(self, template, args):
        if template == "value":
            return f"What is the value of bar {args['label']}?", "number"
        if template == "taller":
            return f"Is bar {args['a']} taller than bar {args['b']}?", "yesno"
        if template == "colour":
            return f"What colour is bar {args['label']}?", "choice"
        return "Which bar has the highest value?", "text"

    def solve(self, template, args, facts, choices):
        if template == "value":
            return str(facts[f"{args['label']}.value"])
        if template == "taller":
            return "yes" if facts[f"{args['a']}.value"] > facts[f"{args['b']}.value"] else "no"
        if template == "colour":
            return letter_of(choices, facts[f"{args['label']}.colour"])
        values = {lb: facts[f"{lb}.value"] for lb in facts["labels"]}
        return max(values, key=values.get)

    def describe(self, facts):
        out = [(("title",), f"The chart is titled \"{facts['title']}\" and its axis runs from 0 to 10.")]
        for lb in facts["labels"]:
            keys = (f"{lb}.value", f"{lb}.colour")
            if all(k in facts for k in keys):
                out.append((keys, f"Bar {lb} is {facts[f'{lb}.colour']} and reaches {facts[f'{lb}.value']}."))
        return out

    def statement(self, template, args, answer, choices):
        if template == "value":
            return f"Bar {args['label']} has a value of {answer}."
        if template == "taller":
            return f"Bar {args['a']} is {'' if answer == 'yes' else 'not '}taller than bar {args['b']}."
        if template == "colour":
            return f"Bar {args['label']} is {choices[letters.index(answer)]}."
        return f"Bar {answer} has the highest value."

    def focus(self, template, args):
        if template in ("value", "colour"):
            return f"bar {args['label']}"
        if template == "taller":
            return f"the heights of bars {args['a']} and {args['b']}"
        return "the heights of all the bars"

    def alternatives(self, template, args, facts):
        return list(facts["labels"])

    def miscount(self, facts, rng):
        key = f"{rng.choice(facts['labels'])}.value"
        new = min(10, max(1, shift_count(facts[key], rng)))
        if new == facts[key]:
            new = facts[key] - 1 if facts[key] > 1 else 2
        return {**facts, key: new}, f"{key}: {facts[key]} -> {new}"

    def wrong_colour(self, facts, rng):
        key = f"{rng.choice(facts['labels'])}.colour"
        new = rng.choice([c for c in BAR_COLOURS if c != facts[key]])
        return {**facts, key: new}, f"{key}: {facts[key]} -> {new}"
