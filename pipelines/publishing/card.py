"""The dataset card: README.md with a YAML header that `datasets` and the Hub read (written
through huggingface_hub's `DatasetCardData`: configs and their data files, each config's features, licenses, languages, creators, source
datasets, task categories) and a body that says how the data was made: teacher and
revision, prompt templates with their hashes, sampling, seeds, the funnel, the cost, how to
load it and how to cite it. Sources under different licenses make `license: other` with a
`license_name` and a `license_link` to LICENSE.md, which lists each source's license."""

from __future__ import annotations

import json
import re
from pathlib import Path

import datasets
from huggingface_hub import DatasetCardData

from pipelines.config import to_plain
from pipelines.config.recipe import Recipe
from pipelines.core.secrets import scrub
from pipelines.core.templates import MARKDOWN_FILTERS, Page, md_code, md_text
from pipelines.observe.funnel import Funnel
from pipelines.publishing.meta import json_fields
from pipelines.publishing.rows import CONFIGS, Layout
from pipelines.stages import stage_inputs
from pipelines.stages.prompting import prompt_hash, render, template_source
from pipelines.teachers.stage import active_stages

TEMPLATES = Path(__file__).parent / "templates"
# Text from data, teachers and the recipe goes through the Markdown filters (md, code,
# md_paragraphs): the card is inert whatever a question or a reply holds.
_TEMPLATE = Page(TEMPLATES, "card.md.jinja", filters=MARKDOWN_FILTERS, trim_blocks=True, lstrip_blocks=True,
                 keep_trailing_newline=True, autoescape=False)


LICENSE_FILE = "LICENSE.md"
MIXED_LICENSE = "per-source-licenses"  # the license_name of a dataset whose sources differ
PAPER_CITATION = """@inproceedings{endo2026downscaling,
  title     = {Downscaling Intelligence: Exploring Perception and Reasoning Bottlenecks in Small Multimodal Models},
  author    = {Endo, Mark and Yeung-Levy, Serena},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2026},
  eprint    = {2511.17487},
  archivePrefix = {arXiv}
}"""
PROJECT_CITATION = """@software{extract_think,
  title   = {extract-think: instruction-relevant visual extraction data for small vision-language models},
  year    = {2026},
  version = {%s}
}"""
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
SNIPPET = re.compile(r'^(ds = load_dataset\()("(?:[^"\\]|\\.)*")', re.M)  # the card's usage line


def tool_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("extract-think")
    except PackageNotFoundError:
        return "0.0.0"


def _source_datasets(recipe: Recipe) -> list[str]:
    """The Hub datasets the records came from (`extended|owner/name`), or `original`."""
    out = []
    for s in recipe.sources:
        path = s.hf.path if s.kind == "hf" and s.hf else ""
        out.append(f"extended|{path}" if _HUB_ID.fullmatch(path) and not Path(path).exists() else "original")
    return sorted(set(out))


def licenses_of(recipe: Recipe, funnel: Funnel) -> dict[str, list[str]]:
    """license -> the sources that brought records under it."""
    present = set(funnel.licenses)
    out: dict[str, list[str]] = {}
    for s in recipe.sources:
        if s.license in present:
            out.setdefault(s.license, []).append(s.name)
    for lic in present - set(out):
        out[lic] = []
    return dict(sorted(out.items()))


def license_file(recipe: Recipe, funnel: Funnel) -> str | None:
    """LICENSE.md for a dataset whose sources carry different licenses, else None."""
    by_license = licenses_of(recipe, funnel)
    if len(by_license) < 2:
        return None
    lines = ["# Licenses", "", "The records of this dataset come from sources under different licenses; each record's",
             "`license` column names its own. Use each record under its source's license.", "",
             "| license | sources |", "|---|---|"]
    lines += [f"| {md_code(lic)} | {', '.join(md_text(n) for n in names) or '-'} |" for lic, names in by_license.items()]
    return "\n".join(lines) + "\n"


def card_for_repo(card: str, repo_id: str) -> str:
    """The card as pushed to `repo_id`: its usage line loads the repo."""
    return SNIPPET.sub(lambda m: m.group(1) + json.dumps(repo_id), card)


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _template_hash(template_id: str) -> str:
    return prompt_hash(template_source(template_id))[:16]


def render_card(recipe: Recipe, funnel: Funnel, charts: dict[str, str] | None = None, examples: list[dict] | None = None,
                dataset_ref: str = ".", audit: dict | None = None) -> str:
    """The card of a run; `dataset_ref` is where it is loaded from (the output folder; `publish`
    puts the repo id there); `audit`: what reviewers' labels say of it (records, reviewers,
    and the kept records' precision as a rate with its interval), where there are labels."""
    # The run id is in the data-file patterns because `datasets` caches a local dataset
    # under a hash of its card's configs (folder name and patterns, not the files): with a
    # fixed pattern, a rerun into the same folder would be served the old rows.
    # `datasets` cannot load a config with zero rows, so an empty config is left out.
    licenses = funnel.licenses or ["unknown"]
    present = [c for c, n in funnel.config_rows().items() if n]
    layout = Layout.of(recipe)
    if len(licenses) == 1:
        license_meta = {"license": licenses[0]}
    else:
        license_meta = {"license": "other", "license_name": MIXED_LICENSE, "license_link": LICENSE_FILE}
    header = {
        "configs": [
            {"config_name": c, "data_files": [{"split": s, "path": f"{c}/{s}-{funnel.run_id}-*.parquet"} for s in funnel.split_rows(c)],
             **({"default": True} if i == 0 else {})}
            for i, c in enumerate(present)
        ],
        "dataset_info": [datasets.DatasetInfo(features=layout.features(c), config_name=c)._to_yaml_dict() for c in present],
        **license_meta,
        "language": list(recipe.output.language),
        "annotations_creators": ["machine-generated"],
        "source_datasets": _source_datasets(recipe),
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
    return scrub(_TEMPLATE.render(  # no secret of the recipe (a URL's password, a key in extra_body) or of a reply
        header=DatasetCardData(**header).to_yaml().strip(), recipe=recipe, funnel=funnel, stages=stages,
        student=render(recipe.stages.student_prompt, focus="<focus>"), kept=max(funnel.kept, 1),
        paid=funnel.prompt_tokens + funnel.completion_tokens, charts=charts, examples=examples, licenses=licenses,
        license_link=LICENSE_FILE if len(licenses) > 1 else None, config=present[0] if present else "extraction",
        ref=json.dumps(dataset_ref).replace("`", "\\u0060"), audit=audit,  # in a code fence: no backtick may close it
        filters=layout.filters, meta_json=json_fields(layout.meta), paper_citation=PAPER_CITATION, splits={c: {"train": 0, "test": 0, **funnel.split_rows(c)} for c in CONFIGS},
        project_citation=PROJECT_CITATION % tool_version(),
        prices={name: recipe.stage_teacher(name).price for name in funnel.stages if name in active_stages(recipe)}))
