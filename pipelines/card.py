"""The dataset card: README.md with a YAML header that `datasets` reads (configs and their
data files, licenses, task categories) and a body that says how the data was made:
teacher and revision, prompt templates with their hashes, sampling, seeds, and the funnel."""

from __future__ import annotations

import yaml

from pipelines.config import to_plain
from pipelines.prompting import prompt_hash, render, template_source
from pipelines.publish import config_rows
from pipelines.recipe import Recipe
from pipelines.stages import active_stages, stage_inputs


def _cost(funnel: dict) -> list[str]:
    kept = max(funnel["kept"], 1)
    tokens = funnel["prompt_tokens"] + funnel["completion_tokens"]
    return [
        "## Cost",
        "",
        "| | total | per kept record |",
        "|---|---|---|",
        f"| teacher requests | {funnel['teacher_requests']} (+ {funnel['cache_hits']} from the cache) | {funnel['teacher_requests'] / kept:.2f} |",
        f"| teacher tokens paid this run (prompt + completion) | {tokens} ({funnel['prompt_tokens']} + {funnel['completion_tokens']}) | {tokens / kept:.1f} |",
        f"| teacher tokens behind the data (this run + replies from the cache) | {tokens + funnel.get('cached_tokens', 0)} "
        f"| {(tokens + funnel.get('cached_tokens', 0)) / kept:.1f} |",
        f"| teacher seconds (summed batch latency) | {funnel.get('teacher_seconds', 0):.2f} | {funnel.get('teacher_seconds', 0) / kept:.4f} |",
        f"| run seconds (wall clock) | {funnel.get('run_seconds', 0):.2f} | {funnel.get('run_seconds', 0) / kept:.4f} |",
        "",
    ]


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _template_hash(template_id: str) -> str:
    return prompt_hash(template_source(template_id))[:16]


def render_card(recipe: Recipe, funnel: dict, licenses: list[str], run_id: str, charts: dict[str, str] | None = None,
                examples: list[dict] | None = None) -> str:
    # The run id is in the data-file patterns because `datasets` caches a local dataset
    # under a hash of its card's configs (folder name and patterns, not the files): with a
    # fixed pattern, a rerun into the same folder would be served the old rows.
    # `datasets` cannot load a config with zero rows, so an empty config is left out.
    present = [c for c, n in config_rows(funnel).items() if n]
    header = {
        "configs": [
            {"config_name": c, "data_files": [{"split": "train", "path": f"{c}/train-{run_id}-*.parquet"}], **({"default": True} if i == 0 else {})}
            for i, c in enumerate(present)
        ],
        "license": licenses[0] if len(licenses) == 1 else "other",
        "task_categories": ["image-text-to-text", "visual-question-answering"],
        "size_categories": [_size_category(funnel["kept"])],
        "tags": ["extract-think", "visual-extraction-tuning", *sorted({"synthetic" if s.kind == "synthetic" else "vqa" for s in recipe.sources})],
        "pretty_name": f"extract-think: {recipe.name}",
    }
    lines = ["---", yaml.safe_dump(header, sort_keys=False).strip(), "---", "", f"# {recipe.name}", ""]
    if recipe.description:
        lines += [recipe.description.strip(), ""]
    lines += [
        "Made with extract-think: a teacher wrote, for each image and its",
        "questions, declarative statements, a focus phrase, a fine-grained *extraction* of the image, and",
        "text-only reasoning from that extraction; filters kept a record only when that reasoning reached",
        "the gold answers.",
        "",
        "## Configs",
        "",
        "| config | rows | what a row is |",
        "|---|---|---|",
        f"| `extraction` | {funnel['kept']} | image, the student's prompt (with the focus), the extraction as the target |",
        f"| `reasoning` | {funnel['reasoning_rows']} | extraction, one question, its reasoning trace and gold answer, the source's metadata (JSON) |",
        f"| `rejected` | {funnel['rejected'] + funnel['failed']} | a rejected or failed record with its reason |",
        "",
        "```python",
        "from datasets import load_dataset",
        'ds = load_dataset("<this repo or folder>", "extraction", split="train")',
        "```",
        "",
        "## Filter funnel",
        "",
        "| step | records |",
        "|---|---|",
        f"| records in | {funnel['in']} |",
    ]
    lines += [f"| failed: `{reason}` | {n} |" for reason, n in sorted(funnel["failed_by_reason"].items())]
    lines += [f"| rejected: `{reason}` | {n} |" for reason, n in sorted(funnel["rejected_by_reason"].items())]
    lines += [
        f"| **kept** | **{funnel['kept']}** |",
        "",
        f"in = kept + rejected + failed: {funnel['in']} = {funnel['kept']} + {funnel['rejected']} + {funnel['failed']}",
        "",
    ]
    if funnel.get("filters"):
        lines += ["Filters, in the order they ran (each sees what the previous one passed):", "",
                  "| filter | in | rejected | passed | reasons |", "|---|---|---|---|---|"]
        for f in funnel["filters"]:
            reasons = ", ".join(f"`{r}` {n}" for r, n in f["reasons"].items()) or "-"
            lines.append(f"| `{f['filter']}` | {f['in']} | {f['rejected']} | {f['passed']} | {reasons} |")
        lines.append("")
    lines += [
        "## How it was made",
        "",
        "| stage | teacher | model | revision | template | template sha256 | inputs | sampling |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in active_stages(recipe):
        stage = getattr(recipe.stages, name)
        t = recipe.stage_teacher(name)
        sampling = ", ".join(f"{k}={v}" for k, v in to_plain(stage.sampling).items())
        lines.append(
            f"| {name} | {t.backend} | `{t.model}` | `{t.revision}` | `{stage.template}` | `{_template_hash(stage.template)}` "
            f"| {', '.join(stage_inputs(name, stage.template, getattr(stage, 'with_image', False)))} | {sampling} |"
        )
    student = render(recipe.stages.student_prompt, focus="<focus>")
    filters = ", ".join(f"`{f.name}` {f.params}" if f.params else f"`{f.name}`" for f in recipe.filters)
    lines += [
        "",
        f"Student prompt (`{recipe.stages.student_prompt}`): \"{student}\"",
        "",
        f"Filters, in order: {filters}.",
        "",
    ]
    lines += _cost(funnel)
    if charts:
        lines += ["## Charts", "", *(f"![{name}]({path})" for name, path in charts.items()), ""]
    if examples:
        lines += ["## Examples", ""]
        for ex in examples:
            lines += [f"**{ex['id']}** - questions: {' | '.join(ex['questions'] or [])}", "",
                      f"> prompt: {ex['prompt']}", ">", f"> extraction: {ex['extraction']}", ""]
    lines += [
        f"Source licenses: {', '.join(licenses)}. The full resolved recipe is in `recipe.yaml` beside this card.",
        "",
    ]
    return "\n".join(lines)
