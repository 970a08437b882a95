"""Cost from the teacher's price: per stage (a stage teacher has its own price), in the
funnel, the card, the report and the CLI; a cached rerun pays nothing but keeps the cost
behind the data; a call's prompt is billed once, whatever its number of samples."""

import json

import pytest

from pipelines.commands.run import run
from pipelines.config.recipe import Price, read_recipe

PRICE = ["teacher.price.input_per_mtok=2.0", "teacher.price.output_per_mtok=8.0"]


def _recipe(tmp_path, *extra):
    return read_recipe("quickstart", ["sources.0.synthetic.num_records=10", "sources.0.synthetic.image_size=96",
                                      f"output.dir={tmp_path / 'out'}", f"cache.dir={tmp_path / 'cache'}", "output.min_kept=0", *extra])


@pytest.fixture(scope="module")
def priced(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cost")
    think = ["stages.think.teacher.backend=oracle", "stages.think.teacher.oracle.error_rate=0.2",
             "stages.think.teacher.price.input_per_mtok=0.5", "stages.think.teacher.price.output_per_mtok=1.0"]
    recipe = _recipe(tmp, *PRICE, *think)
    return tmp, recipe, run(recipe), run(recipe)  # the second run is answered from the cache


def test_cost_is_priced_per_stage_and_a_cached_rerun_pays_nothing(priced):
    _, recipe, first, again = priced
    f = first.funnel
    assert set(f.stages) == {"statements", "focus", "extraction", "think"} and not f.unpriced_stages
    main, think = Price(2.0, 8.0), Price(0.5, 1.0)
    want = {n: (think if n == "think" else main).of(st["prompt_tokens"], st["completion_tokens"]) for n, st in f.stages.items()}
    assert f.cost_by_stage == pytest.approx(want) and f.cost == pytest.approx(sum(want.values())) and f.cost > 0
    assert f.cost_by_stage["think"] < main.of(f.stages["think"]["prompt_tokens"], f.stages["think"]["completion_tokens"])
    assert f.teacher_requests == sum(st["requests"] for st in f.stages.values())
    g = again.funnel
    assert g.teacher_requests == 0 and g.cost == 0
    assert g.cost_with_cache == pytest.approx(f.cost)  # the same replies, now from the cache
    assert {n: (st["cached_prompt_tokens"], st["cached_completion_tokens"]) for n, st in g.stages.items()} == \
           {n: (st["prompt_tokens"], st["completion_tokens"]) for n, st in f.stages.items()}


def test_cost_is_in_the_funnel_json_the_card_and_the_report(priced):
    _, _, _, again = priced
    out, f = again.out_dir, again.funnel
    saved = json.loads((out / "funnel.json").read_text())
    assert saved["cost_with_cache"] == f.cost_with_cache and saved["stages"] == f.stages
    card = (out / "README.md").read_text()
    assert f"| cost behind the data (cached replies included, at today's price) | {f.cost_with_cache:.4f} |" in card
    assert "| think | 0 |" in card and "0.5 / 1.0" in card and "2.0 / 8.0" in card
    assert f"{f.cost_with_cache:.4f} with the cached replies" in (out / "report.html").read_text()


def test_a_prompt_is_billed_once_per_call_whatever_its_samples(tmp_path):
    three = run(_recipe(tmp_path / "a", "cache.dir=null")).funnel.stages["extraction"]
    two = run(_recipe(tmp_path / "b", "cache.dir=null", "stages.extraction.sampling.n=2")).funnel.stages["extraction"]
    assert three["requests"] == two["requests"] and three["prompt_tokens"] == two["prompt_tokens"]  # the same prompts
    assert three["completion_tokens"] > two["completion_tokens"]


def test_without_a_price_there_is_no_cost(tmp_path):
    f = run(_recipe(tmp_path, "cache.dir=null")).funnel
    assert f.cost is None and f.cost_by_stage == {} and set(f.unpriced_stages) == set(f.stages)
    assert "cost paid this run" not in (tmp_path / "out" / "README.md").read_text()
