"""A printed shop receipt: reading prices and names, counting lines, finding the maximum.
The text-heavy family: small fonts (`font_scale`) make it a reading test."""

from __future__ import annotations

import random

from pipelines.config.source_config import Difficulty
from pipelines.sources.scenes.base import DEFAULT, Family, canvas, font, scaled, text_px

SHOPS = ["CORNER MARKET", "GREEN GROCER", "CITY BAKERY", "HARBOUR DELI", "NORTH PHARMACY", "BOOK NOOK"]
ITEMS = ["apples", "bread", "milk", "coffee", "eggs", "cheese", "rice", "tea", "butter", "honey",
         "pasta", "soap", "jam", "oats", "juice", "salt"]


def _money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _items(facts: dict) -> list[str]:
    return [k.split(".", 1)[1] for k in facts if k.startswith("price.")]


class Receipt(Family):
    name = "receipt"
    scene_sentence = "The image shows a printed shop receipt on a grey table, with a shop name, item lines with prices and a total."

    def sample_facts(self, rng: random.Random, difficulty: Difficulty = DEFAULT) -> dict:
        n = rng.randint(2, min(len(ITEMS), scaled(5, difficulty, at_least=2)))
        facts: dict = {"shop": rng.choice(SHOPS)}
        prices = rng.sample(range(49, 1999, 10), n)  # distinct, so "the most expensive" is one item
        for item, cents in zip(rng.sample(ITEMS, n), prices):
            facts[f"price.{item}"] = cents
        facts["total"] = sum(prices)
        return facts

    def draw(self, facts, size, rng, difficulty=DEFAULT):
        img, d = canvas(size, (190, 190, 195))
        items = _items(facts)
        line = text_px(max(9, size // 26), difficulty)
        height = min(size * 0.94, line * 1.5 * (len(items) + 5))
        x0, x1, y = size * 0.2, size * 0.8, (size - height) / 2
        d.rectangle([x0, y, x1, y + height], fill=(252, 252, 248))
        f = font(line)
        d.text(((x0 + x1) / 2, y + line), facts["shop"], fill=(20, 20, 20), font=font(text_px(max(10, size // 22), difficulty)), anchor="mm")
        y += line * 2.5
        for item in items:
            d.text((x0 + line * 0.6, y), item.upper(), fill=(20, 20, 20), font=f)
            d.text((x1 - line * 0.6, y), _money(facts[f"price.{item}"]), fill=(20, 20, 20), font=f, anchor="ra")
            y += line * 1.5
        d.line([(x0 + line * 0.5, y), (x1 - line * 0.5, y)], fill=(20, 20, 20), width=1)
        d.text((x0 + line * 0.6, y + line * 0.4), "TOTAL", fill=(20, 20, 20), font=f)
        d.text((x1 - line * 0.6, y + line * 0.4), _money(facts["total"]), fill=(20, 20, 20), font=f, anchor="ra")
        return img

    def turn_specs(self, facts, rng, k):
        items = _items(facts)
        specs = [("price", {"item": i}, ()) for i in rng.sample(items, min(2, len(items)))]
        specs += [("total", {}, ()), ("count", {}, ()), ("priciest", {}, ()), ("shop", {}, ())]
        rng.shuffle(specs)
        return specs[:k]

    def question(self, template, args):
        return {
            "price": (f"What is the price of the {args.get('item')} on the receipt?", "number"),
            "total": ("What is the total on the receipt?", "number"),
            "count": ("How many different items are listed on the receipt?", "number"),
            "priciest": ("Which item on the receipt is the most expensive?", "text"),
            "shop": ("What is the name of the shop on the receipt?", "text"),
        }[template]

    def solve(self, template, args, facts, choices):
        if template == "price":
            return _money(facts[f"price.{args['item']}"])
        if template == "total":
            return _money(facts["total"])
        if template == "shop":
            return facts["shop"]
        prices = {i: facts[f"price.{i}"] for i in _items(facts)}
        if not prices:
            raise KeyError("price")  # the extraction stated no item: the question cannot be answered
        return str(len(prices)) if template == "count" else max(prices, key=prices.get)

    def describe(self, facts):
        out = []
        if "shop" in facts:
            out.append((("shop",), f"The receipt is from {facts['shop']}."))
        for item in _items(facts):
            out.append(((f"price.{item}",), f"It lists {item} at {_money(facts[f'price.{item}'])}."))
        if "total" in facts:
            out.append((("total",), f"The total printed at the bottom is {_money(facts['total'])}."))
        return out

    def statement(self, template, args, answer, choices):
        return {
            "price": f"The price of the {args.get('item')} on the receipt is {answer}.",
            "total": f"The receipt's total is {answer}.",
            "count": f"The receipt lists {answer} different items.",
            "priciest": f"The most expensive item on the receipt is {answer}.",
            "shop": f"The receipt is from {answer}.",
        }[template]

    def focus(self, template, args):
        return {"price": f"the line for {args.get('item')} on the receipt", "total": "the bottom line of the receipt",
                "count": "the item lines of the receipt", "priciest": "the prices on the receipt",
                "shop": "the header of the receipt"}[template]

    def alternatives(self, template, args, facts):
        return list(SHOPS) if template == "shop" else _items(facts)

    def miscount(self, facts, rng):
        key = rng.choice([k for k in facts if k.startswith("price.")])
        new = max(9, facts[key] + rng.choice([-100, -10, 10, 100]))
        return {**facts, key: new}, f"{key}: {_money(facts[key])} -> {_money(new)}"

    def wrong_colour(self, facts, rng):
        # a receipt has no colours to confuse; the analogous misreading swaps two prices
        keys = [k for k in facts if k.startswith("price.")]
        a, b = rng.sample(keys, 2)
        return {**facts, a: facts[b], b: facts[a]}, f"prices of {a} and {b} swapped"
