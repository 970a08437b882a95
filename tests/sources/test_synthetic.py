import io
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from pipelines.config.recipe import SCENE_FAMILIES, SyntheticSource
from pipelines.sources.scenes import FAMILIES
from pipelines.sources.synthetic import make_record, sketch_record

CONFIG = SyntheticSource(num_records=80, image_size=256, seed=3)


def test_same_seed_same_records_byte_for_byte():
    for i in range(10):
        a, b = make_record(i, CONFIG), make_record(i, CONFIG)
        assert a.images[0].bytes == b.images[0].bytes
        assert a == b


def test_another_seed_gives_other_records():
    other = SyntheticSource(num_records=80, image_size=256, seed=4)
    assert [make_record(i, CONFIG).id for i in range(10)] != [make_record(i, other).id for i in range(10)]


def test_ids_are_unique_and_images_decode_at_the_configured_size():
    records = [make_record(i, CONFIG) for i in range(80)]
    assert len({r.id for r in records}) == 80
    for r in records[:10]:
        assert Image.open(io.BytesIO(r.images[0].bytes)).size == (256, 256)


def test_all_families_and_answer_types_occur():
    records = [make_record(i, CONFIG) for i in range(80)]
    assert set(Counter(r.facts["family"] for r in records)) == set(SCENE_FAMILIES)
    types = Counter(t.answer_type for r in records for t in r.turns)
    assert set(types) == {"choice", "yesno", "number", "text"}
    assert max(len(r.turns) for r in records) == CONFIG.max_turns


def test_gold_answers_follow_from_the_facts():
    for i in range(80):
        r = make_record(i, CONFIG)
        family = FAMILIES[r.facts["family"]]
        for t in r.turns:
            assert family.solve(t.meta["template"], t.meta["args"], r.facts["values"], t.choices) == t.answer
            if t.answer_type == "choice":
                assert t.answer in "ABCD"[: len(t.choices)]


@pytest.mark.parametrize("family", SCENE_FAMILIES)
def test_corrupted_facts_differ_and_descriptions_state_every_fact(family):
    import random

    f = FAMILIES[family]
    rng = random.Random(1)
    facts = f.sample_facts(rng)
    for kind in ("miscount", "wrong_colour"):
        changed, detail = getattr(f, kind)(facts, random.Random(2))
        assert changed != facts and detail
    described = {k for keys, _ in f.describe(facts) for k in keys}
    scalar = {k for k, v in facts.items() if not isinstance(v, list)}
    assert {k for k in scalar if k not in ("title", "ink")} <= described


def test_a_family_restricted_source_draws_only_those_families():
    cfg = SyntheticSource(num_records=20, families=["sign"], image_size=128)
    assert {make_record(i, cfg).facts["family"] for i in range(20)} == {"sign"}


def test_at_least_six_families_each_with_every_interface_method_working():
    assert len(SCENE_FAMILIES) >= 6
    import random

    for name in SCENE_FAMILIES:
        cfg = SyntheticSource(num_records=30, families=[name], image_size=128, max_turns=4)
        for i in range(30):
            r = make_record(i, cfg)
            f = FAMILIES[name]
            for t in r.turns:
                assert f.statement(t.meta["template"], t.meta["args"], t.answer, t.choices)
                assert f.focus(t.meta["template"], t.meta["args"])
            assert f.describe(r.facts["values"])
            f.miscount(r.facts["values"], random.Random(i))


def _pixels(record):
    rgb = np.asarray(Image.open(io.BytesIO(record.images[0].bytes)).convert("RGB"))
    return [tuple(int(c) for c in p) for p in rgb.reshape(-1, 3)]


def test_difficulty_knobs_move_the_scenes():
    from pipelines.config.source_config import Difficulty

    base = SyntheticSource(num_records=60, families=["shapes"], image_size=128)
    many = SyntheticSource(num_records=60, families=["shapes"], image_size=128, difficulty=Difficulty(objects=3.0))
    total = lambda cfg: sum(v for i in range(60) for v in make_record(i, cfg).facts["values"].values())  # noqa: E731
    assert total(many) > 1.8 * total(base)

    receipts = SyntheticSource(num_records=40, families=["receipt"], image_size=128)
    longer = SyntheticSource(num_records=40, families=["receipt"], image_size=128, difficulty=Difficulty(objects=2.0))
    items = lambda cfg: max(sum(k.startswith("price.") for k in make_record(i, cfg).facts["values"]) for i in range(40))  # noqa: E731
    assert items(receipts) <= 5 < items(longer)

    signs = SyntheticSource(num_records=1, families=["sign"], image_size=256)
    small = SyntheticSource(num_records=1, families=["sign"], image_size=256, difficulty=Difficulty(font_scale=0.5))
    a, b = make_record(0, signs), make_record(0, small)
    assert a.facts["values"] == b.facts["values"]  # the same scene, drawn with smaller text
    ink = lambda r: sum(p == (250, 250, 250) or p == (20, 20, 20) for p in _pixels(r))  # noqa: E731
    assert ink(b) < 0.6 * ink(a)

    plain = make_record(0, SyntheticSource(num_records=1, families=["barchart"], image_size=128))
    busy = make_record(0, SyntheticSource(num_records=1, families=["barchart"], image_size=128, difficulty=Difficulty(clutter=1.0, distractors=5)))
    assert busy.facts["values"] == plain.facts["values"] and busy.facts["distractors"] == 5
    changed = sum(p != q for p, q in zip(_pixels(busy), _pixels(plain))) / (128 * 128)
    assert changed > 0.05


@pytest.mark.parametrize("family", SCENE_FAMILIES)
def test_a_sketch_has_the_drawn_scenes_facts_turns_and_origin(family):
    """Deduplication reads sketches: every family at every difficulty knob and size must make
    the same random choices with and without pixels, or the questions after the drawing
    would differ."""
    from pipelines.config.source_config import Difficulty

    knobs = [Difficulty(), Difficulty(objects=2.5, clutter=1.0, distractors=4, font_scale=0.6), Difficulty(clutter=0.3, distractors=1)]
    for size, difficulty in zip((64, 256, 97), knobs):
        config = SyntheticSource(num_records=40, families=[family], image_size=size, difficulty=difficulty, max_turns=4, seed=size)
        for i in range(40):
            drawn, sketch = make_record(i, config, "s", "mit"), sketch_record(i, config, "s", "mit")
            assert (sketch.facts, sketch.turns, sketch.origin, sketch.source, sketch.license) == \
                (drawn.facts, drawn.turns, drawn.origin, drawn.source, drawn.license)
            assert sketch.images == () and sketch.id == ""


def test_the_held_out_split_shares_no_scene_with_training():
    from pipelines.sources.synthetic import scene_split

    train = SyntheticSource(num_records=300, image_size=64, families=["sign", "clock"], max_turns=1, seed=0)
    held = SyntheticSource(num_records=300, image_size=64, families=["sign", "clock"], max_turns=1, seed=0, split="heldout")
    scenes = lambda cfg: {(r.facts["family"], str(sorted(r.facts["values"].items()))) for r in (make_record(i, cfg) for i in range(300))}  # noqa: E731
    a, b = scenes(train), scenes(held)
    assert len(b) > 150 and not a & b
    r = make_record(7, held)
    assert r.facts["split"] == "heldout" and scene_split(r.facts["family"], r.facts["values"], 0.1) == "heldout"
    # another seed for training still never draws a held-out scene
    other = SyntheticSource(num_records=300, image_size=64, families=["sign", "clock"], max_turns=1, seed=9)
    assert not scenes(other) & b


@pytest.mark.parametrize("n", [0, 1, 200, 255, 257, 50_000, 3_000_000])
def test_scene_ranges_cover_every_scene_once_in_few_small_units(n):
    from pipelines.sources import scene_ranges

    ranges = scene_ranges(n)
    assert [i for start, stop in ranges for i in range(start, stop)] == list(range(n))
    assert all(0 < stop - start <= 1000 for start, stop in ranges)
    if n <= 256:
        assert len(ranges) == n  # one scene per unit: every worker gets some
    else:
        assert 128 < len(ranges) <= max(256, -(-n // 1000))  # about 256 units, more only when a unit would pass 1000
