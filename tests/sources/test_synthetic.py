import io
from collections import Counter

import pytest
from PIL import Image

from pipelines.recipe import SCENE_FAMILIES, SyntheticSource
from pipelines.sources.scenes import FAMILIES
from pipelines.sources.synthetic import make_record

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
