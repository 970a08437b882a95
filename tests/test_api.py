"""The Python API: a recipe as a name, a path, a dict or a Recipe, with overrides; the
outcome's funnel and folder; the same refusals as the CLI."""

import datasets
import pytest
import yaml

from pipelines import load_recipe, plan_recipe, run_recipe
from pipelines.commands.run import NotPublished
from pipelines.config import ConfigError
from pipelines.config.recipe import dump_recipe
from tests.published import published_rows

SMALL = ["sources.0.synthetic.num_records=8", "sources.0.synthetic.image_size=96", "cache.dir=null"]


def test_run_a_dict_recipe_and_read_the_outcome(tmp_path):
    as_dict = yaml.safe_load(dump_recipe(load_recipe("quickstart", SMALL)))
    as_dict["output"]["dir"] = str(tmp_path / "out")
    outcome = run_recipe(as_dict, ["teacher.oracle.error_rate=0"])
    assert outcome.out_dir == tmp_path / "out" and outcome.funnel.records_in == 8 == outcome.funnel.kept
    assert len(published_rows(str(outcome.out_dir), "extraction")) == 8
    assert load_recipe(outcome.out_dir / "recipe.yaml").teacher.oracle.error_rate == 0  # the override was applied


def test_a_loaded_recipe_takes_overrides_and_errors_are_the_clis(tmp_path):
    recipe = load_recipe("quickstart", SMALL)
    assert load_recipe(recipe, ["sources.0.synthetic.num_records=3"]).sources[0].synthetic.num_records == 3
    with pytest.raises(ConfigError, match="teacher.modle: unknown key"):
        run_recipe("quickstart", ["teacher.modle=x"])
    with pytest.raises(NotPublished, match="fewer than output.min_kept"):
        run_recipe(recipe, [f"output.dir={tmp_path / 'none'}", "output.min_kept=100"])
    assert not (tmp_path / "none").exists()


def test_plan_from_python(tmp_path):
    estimate = plan_recipe("quickstart", [*SMALL, "sources.0.synthetic.num_records=40"], limit=10)
    assert estimate["sample"]["records"] == 10 and estimate["records"] == 40 and estimate["teacher_calls"] > 0


def test_the_api_is_quiet_by_default_and_its_outcome_loads_the_dataset(tmp_path, caplog):
    """No Beam noise reaches the caller's logs (the CLI's filter), and the outcome loads each
    published config; an unpublished config says which are."""
    import logging

    from pipelines.commands.quiet import BeamNoise

    root = logging.getLogger()
    for f in [f for f in root.filters if isinstance(f, BeamNoise)]:  # as in a fresh interpreter
        root.removeFilter(f)
    caplog.set_level(logging.WARNING)
    outcome = run_recipe("quickstart", ["sources.0.synthetic.num_records=12", "sources.0.synthetic.image_size=64",
                                        "teacher.oracle.error_rate=0", f"output.dir={tmp_path / 'out'}", "cache.dir=null"])
    assert not [r for r in caplog.records if any(n in str(r.msg) for n in BeamNoise.NOISE)]
    kept = outcome.dataset("extraction")  # a DatasetDict of the config's splits
    assert sum(map(len, kept.values())) == outcome.funnel.kept and kept["train"].features["image"] == datasets.Image()
    assert sum(map(len, outcome.dataset("reasoning").values())) == outcome.funnel.reasoning_rows
    assert outcome.dataset("extraction", "train")["id"] == kept["train"]["id"]
    with pytest.raises(ValueError, match="rejected config has no rows"):
        outcome.dataset("rejected")
    if "test" not in kept:
        with pytest.raises(ValueError, match="no 'test' split"):
            outcome.dataset("extraction", "test")
