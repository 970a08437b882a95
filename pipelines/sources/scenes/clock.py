"""An analogue wall clock: reading the time from two hands, and the frame's colour."""

from __future__ import annotations

import math
import random

from pipelines.config.source_config import Difficulty
from pipelines.core import letters
from pipelines.sources.scenes.base import COLOURS, DEFAULT, Family, canvas, choice_options, font, letter_of, text_px

FRAME_COLOURS = ["red", "blue", "green", "black", "orange", "purple"]


def _time(facts: dict) -> str:
    return f"{facts['hour']}:{facts['minute']:02d}"


class Clock(Family):
    name = "clock"
    scene_sentence = "The image shows a round analogue wall clock with an hour hand and a longer minute hand."

    def sample_facts(self, rng: random.Random, difficulty: Difficulty = DEFAULT) -> dict:
        # harder clocks may show any minute, easier ones only multiples of five
        step = 1 if difficulty.objects > 1.5 else 5
        return {"hour": rng.randint(1, 12), "minute": rng.randrange(0, 60, step), "frame": rng.choice(FRAME_COLOURS)}

    def draw(self, facts, size, rng, difficulty=DEFAULT):
        img, d = canvas(size, (245, 240, 230))
        c, r = size / 2, size * 0.42
        d.ellipse([c - r, c - r, c + r, c + r], fill=COLOURS["white"], outline=COLOURS[facts["frame"]], width=max(4, size // 28))
        f = font(text_px(max(10, size // 16), difficulty))
        for n in range(1, 13):
            a = math.radians(n * 30 - 90)
            d.text((c + r * 0.78 * math.cos(a), c + r * 0.78 * math.sin(a)), str(n), fill=COLOURS["black"], font=f, anchor="mm")
        for m in range(60):
            a = math.radians(m * 6 - 90)
            inner = r * (0.9 if m % 5 else 0.86)
            d.line([(c + inner * math.cos(a), c + inner * math.sin(a)), (c + r * 0.95 * math.cos(a), c + r * 0.95 * math.sin(a))],
                   fill=COLOURS["black"], width=1 if m % 5 else 2)
        minute_angle = math.radians(facts["minute"] * 6 - 90)
        hour_angle = math.radians((facts["hour"] % 12 + facts["minute"] / 60) * 30 - 90)
        d.line([(c, c), (c + r * 0.5 * math.cos(hour_angle), c + r * 0.5 * math.sin(hour_angle))], fill=COLOURS["black"], width=max(4, size // 45))
        d.line([(c, c), (c + r * 0.8 * math.cos(minute_angle), c + r * 0.8 * math.sin(minute_angle))], fill=COLOURS["black"], width=max(2, size // 90))
        d.ellipse([c - 4, c - 4, c + 4, c + 4], fill=COLOURS["black"])
        return img

    def turn_specs(self, facts, rng, k):
        specs = [("time", {}, ()), ("hour", {}, ()), ("late", {}, ()), ("frame", {}, choice_options(rng, facts["frame"], FRAME_COLOURS))]
        rng.shuffle(specs)
        return specs[:k]

    def question(self, template, args):
        return {
            "time": ("What time does the clock show? Give it as hours:minutes.", "text"),
            "hour": ("What hour does the clock show?", "number"),
            "late": ("Is the time on the clock past half past the hour?", "yesno"),
            "frame": ("What colour is the frame of the clock?", "choice"),
        }[template]

    def solve(self, template, args, facts, choices):
        if template == "time":
            return f"{facts['hour']}:{facts['minute']:02d}"
        if template == "hour":
            return str(facts["hour"])
        if template == "late":
            return "yes" if facts["minute"] > 30 else "no"
        return letter_of(choices, facts["frame"])

    def describe(self, facts):
        out = []
        if "frame" in facts:
            out.append((("frame",), f"The clock has a {facts['frame']} frame and the numbers 1 to 12 around a white face."))
        if "hour" in facts and "minute" in facts:
            out.append((("hour", "minute"), f"The hour hand is near the {facts['hour']} and the minute hand is on minute {facts['minute']}, so the clock shows {_time(facts)}."))
        return out

    def statement(self, template, args, answer, choices):
        if template == "frame":
            return f"The clock's frame is {choices[letters.index(answer)]}."
        if template == "late":
            return f"The clock shows a time {'past' if answer == 'yes' else 'not past'} half past the hour."
        return f"The clock shows {answer}." if template == "time" else f"The hour on the clock is {answer}."

    def focus(self, template, args):
        return {"time": "the positions of both hands of the clock", "hour": "the short hand of the clock",
                "late": "where the long hand of the clock points", "frame": "the rim of the clock"}[template]

    def alternatives(self, template, args, facts):
        return [_time({"hour": h, "minute": facts["minute"]}) for h in range(1, 13)] + [_time({"hour": facts["hour"], "minute": m}) for m in range(0, 60, 5)]

    def miscount(self, facts, rng):
        if rng.random() < 0.5:
            new = {**facts, "minute": (facts["minute"] + rng.choice([-10, -5, 5, 10])) % 60}
            return new, f"minute: {facts['minute']} -> {new['minute']}"
        new = {**facts, "hour": (facts["hour"] + rng.choice([-1, 1]) - 1) % 12 + 1}
        return new, f"hour: {facts['hour']} -> {new['hour']}"

    def wrong_colour(self, facts, rng):
        new = rng.choice([c for c in FRAME_COLOURS if c != facts["frame"]])
        return {**facts, "frame": new}, f"frame: {facts['frame']} -> {new}"
