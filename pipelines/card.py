"""The dataset card: README.md with a YAML header that `datasets` reads (configs and their
data files, licenses, task categories) and a body that says how the data was made:
teacher and revision, prompt templates with their hashes, sampling, seeds, and the funnel."""

from __future__ import annotations

from pathlib import Path

import jinja2
import yaml

from pipelines.config import to_plain
from pipelines.funnel import Funnel
from pipelines.prompting import prompt_hash, render, template_source
from pipelines.recipe import Recipe
from pipelines.stages import active_stages, stage_inputs

TEMPLATES = Path(__file__).parent / "templates"
_TEMPLATE = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), trim_blocks=True, lstrip_blocks=True,
                               keep_trailing_newline=True, autoescape=False, undefined=jinja2.StrictUndefined
                               ).get_template("card.md.jinja")


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _template_hash(template_id: str) -> str:
    return prompt_hash(template_source(template_id))[:16]


def render_card(recipe: Recipe, funnel: Funnel, charts: dict[str, str] | None = None, examples: list[dict] | None = None) -> str:
    # The run id is in the data-file patterns because `datasets` caches a local dataset
    # under a hash of its card's configs (folder name and patterns, not the files): with a
    # fixed pattern, a rerun into the same folder would be served the old rows.
    # `datasets` cannot load a config with zero rows, so an empty config is left out.
    licenses = funnel.licenses or ["unknown"]
    present = [c for c, n in funnel.config_rows().items() if n]
    header = {
        "configs": [
            {"config_name": c, "data_files": [{"split": "train", "path": f"{c}/train-{funnel.run_id}-*.parquet"}],
             **({"default": True} if i == 0 else {})}
            for i, c in enumerate(present)
        ],
        "license": licenses[0] if len(licenses) == 1 else "other",
        "task_categories": ["image-text-to-text", "visual-question-answering"],
        "size_categories": [_size_category(funnel.kept)],
        "tags": ["extract-think", "visual-extraction-tuning", *sorted({"synthetic" if s.kind == "synthetic" else "vqa" for s in recipe.sources})],
        "pretty_name": f"extract-think: {recipe.name}",
    }
    stages = []
    for name in active_stages(recipe):
        stage = getattr(recipe.stages, name)
        stages.append({"name": name, "teacher": recipe.stage_teacher(name), "template": stage.template,
                       "template_sha": _template_hash(stage.template),
                       "inputs": stage_inputs(name, stage.template, getattr(stage, "with_image", False)),
                       "sampling": ", ".join(f"{k}={v}" for k, v in to_plain(stage.sampling).items())})
    return _TEMPLATE.render(
        header=yaml.safe_dump(header, sort_keys=False).strip(), recipe=recipe, funnel=funnel, stages=stages,
        student=render(recipe.stages.student_prompt, focus="<focus>"), kept=max(funnel.kept, 1),
        paid=funnel.prompt_tokens + funnel.completion_tokens, charts=charts, examples=examples, licenses=licenses)
