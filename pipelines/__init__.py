"""extract-think's pipelines, as a Python API (the CLI is a thin layer over it):

    from pipelines import run_recipe, plan_recipe, load_recipe

    outcome = run_recipe("quickstart", ["sources.0.synthetic.num_records=50", "output.dir=out/small"])
    outcome.funnel.kept, outcome.out_dir          # the funnel (pipelines.observe.funnel.Funnel) and the dataset
    kept = outcome.dataset("extraction")          # a config of the published dataset, loaded with `datasets`
    estimate = plan_recipe("my-recipe.yaml", limit=50)   # a real run on 50 records, scaled to the sources

A recipe is a YAML path, a bundled recipe's name, a dict of the YAML's keys, or a loaded
`Recipe`; overrides are `key.sub=value` strings, as `--set` takes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipelines.commands.run import RunOutcome
    from pipelines.config.recipe import Recipe

__all__ = ["load_recipe", "run_recipe", "plan_recipe"]


def load_recipe(recipe: "str | Path | dict | Recipe", overrides=()) -> "Recipe":
    """A validated Recipe from a path, a bundled name, a dict or a Recipe, with overrides."""
    from pipelines.config import build_with_overrides, to_plain
    from pipelines.config import recipe as recipes

    if isinstance(recipe, recipes.Recipe):
        return build_with_overrides(recipes.Recipe, to_plain(recipe), overrides, "recipe") if overrides else recipe
    if isinstance(recipe, dict):
        return build_with_overrides(recipes.Recipe, recipe, overrides, "recipe")
    return recipes.read_recipe(recipe, overrides)


def run_recipe(recipe: "str | Path | dict | Recipe", overrides=(), progress: str = "auto", progress_every: float = 30.0,
               quiet: bool = True) -> "RunOutcome":
    """Run a recipe and publish its dataset at its `output.dir`; returns the outcome (`out_dir`,
    `funnel`, `run_id`, and `dataset(config)` to load a published config). Raises
    `pipelines.config.ConfigError` for a bad recipe or output (before any work) and
    `pipelines.commands.run.NotPublished` when the run finished but must not replace the output (too
    many failed, too few kept): the output is then left as it was.
    `progress`: "auto" (bars on a terminal, else none), "bars", "log" (a line per step every
    `progress_every` seconds, to stderr) or "none". `quiet`: drop Beam's harmless warnings
    (`pipelines.commands.quiet`), as the CLI does."""
    if quiet:
        from pipelines.commands.quiet import quiet as drop_noise

        drop_noise()
    from pipelines.commands.run import run
    from pipelines.observe import progress as display
    from pipelines.sources import expected_count
    from pipelines.teachers.stage import active_stages

    loaded = load_recipe(recipe, overrides)
    steps, total = ["source", *active_stages(loaded), "written"], expected_count(loaded.sources)
    if progress == "auto":
        progress = "bars" if display.bars_fit() else "none"
    listener = {"bars": lambda: display.TqdmBars(steps, total), "log": lambda: display.LogLines(steps, total, every=progress_every),
                "none": lambda: None}[progress]()
    display.set_listener(listener)
    try:
        return run(loaded)
    finally:
        display.set_listener(None)
        if listener:
            listener.close()


def plan_recipe(recipe: "str | Path | dict | Recipe", overrides=(), limit: int = 50, out_dir: str | Path | None = None) -> dict:
    """Run the recipe on its first `limit` records (never into its output) and estimate the
    whole run: records kept, teacher calls, tokens, seconds and cost (`pipelines.commands.plan`)."""
    from pipelines.commands.plan import plan

    return plan(load_recipe(recipe, overrides), limit, out_dir)
