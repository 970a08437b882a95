"""What a run shows about itself: charts for the card, examples, and a self-contained HTML
report (run time and cost, funnel, length histograms, each filter's score distribution,
every reason a record ended with its count and examples, a gallery of kept samples with their
images and of rejected ones with their reasons, searchable by id or text), written beside
the run's data before its folder is swapped in.

Lengths are counted by the pipeline into word-count buckets (Beam counters, so they cost
nothing extra and add up across workers); samples are the first rows of the first shard of
each config, read back from the parquet the pipeline wrote.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

from pipelines.core.templates import Page
from pipelines.observe.funnel import Funnel

ASSETS = "assets"
_TEMPLATE = Page(Path(__file__).parent / "templates", "report.html.jinja", autoescape=True)


def bar_chart(title: str, rows: list[tuple[str, int]], colour=(46, 110, 180)) -> bytes:
    """A horizontal bar chart as PNG bytes (drawn with Pillow: no plotting dependency)."""
    font, small = ImageFont.load_default(size=15), ImageFont.load_default(size=12)
    label_w = max([160] + [int(font.getlength(label)) + 16 for label, _ in rows])
    width, bar_h, top = label_w + 420, 22, 40
    img = Image.new("RGB", (width, top + bar_h * len(rows) + 16), "white")
    d = ImageDraw.Draw(img)
    d.text((10, 10), title, fill="black", font=font)
    most = max([v for _, v in rows] + [1])
    for i, (label, value) in enumerate(rows):
        y = top + i * bar_h
        d.text((label_w - int(font.getlength(label)) - 8, y + 3), label, fill="black", font=font)
        length = int(360 * value / most)
        d.rectangle([label_w, y + 3, label_w + max(length, 1), y + bar_h - 3], fill=colour)
        d.text((label_w + length + 6, y + 5), str(value), fill="black", font=small)
    buf = io.BytesIO()
    img.save(buf, "PNG", optimize=True)
    return buf.getvalue()


def funnel_rows(funnel: Funnel) -> list[tuple[str, int]]:
    rows = [("records in", funnel.records_in)]
    if funnel.filters:
        rows.append(("reached the filters", funnel.filters[0].checked))
    return rows + [(f"after {f.filter}", f.passed) for f in funnel.filters] + [("kept", funnel.kept)]


def used_buckets(histogram: dict[str, int]) -> list[tuple[str, int]]:
    """The buckets from the first to the last that holds a text (every bucket when none does):
    no run of empty bars above or below the lengths the run had."""
    items = list(histogram.items())
    filled = [i for i, (_, n) in enumerate(items) if n]
    return items[filled[0] : filled[-1] + 1] if filled else items


CHARTS = ("funnel", "extraction_words", "reasoning_words")  # the card shows them in this order


def chart_paths(names) -> dict[str, str]:
    """{name: relative path} of the charts, in the card's order."""
    present = set(names)
    return {name: f"{ASSETS}/{name}.png" for name in CHARTS if name in present}


def write_charts(folder: Path, funnel: Funnel) -> dict[str, str]:
    """PNG charts under folder/assets; returns {name: relative path}."""
    (folder / ASSETS).mkdir(exist_ok=True)
    charts = {
        "funnel": bar_chart("Records through the pipeline", funnel_rows(funnel)),
        "extraction_words": bar_chart("Kept extractions: words", used_buckets(funnel.lengths["extraction"]), (60, 150, 90)),
        "reasoning_words": bar_chart("Published reasoning traces: words", used_buckets(funnel.lengths["reasoning"]), (170, 90, 60)),
    }
    for name, png in charts.items():
        (folder / ASSETS / f"{name}.png").write_bytes(png)
    return chart_paths(charts)


def iter_rows(folder: str | Path, config: str, columns: list[str], batch_size: int = 1024):
    """The rows of a config, shard after shard, only `columns`, a batch in memory at a time;
    `folder` is a local path or any fsspec URL."""
    fs, _ = fsspec.core.url_to_fs(str(folder))
    for shard in sorted(fs.glob(f"{str(folder).rstrip('/')}/{config}/*.parquet")):
        with fs.open(shard, "rb") as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_size, columns=columns):
                yield from batch.to_pylist()


def first_rows(folder: str | Path, config: str, n: int, columns: list[str]) -> list[dict]:
    """The first `n` rows of a config (`iter_rows`)."""
    return list(itertools.islice(iter_rows(folder, config, columns, batch_size=max(1, min(n, 1024))), n))


def thumbnail_png(image: dict | None, side: int = 256) -> bytes | None:
    if not image or not image.get("bytes"):
        return None
    with Image.open(io.BytesIO(image["bytes"])) as im:
        im = im.convert("RGB")
        im.thumbnail((side, side))
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return buf.getvalue()


def data_uri(png: bytes | None) -> str:
    return f"data:image/png;base64,{base64.b64encode(png).decode()}" if png else ""


SCORE_BUCKETS = (0.2, 0.4, 0.6, 0.8, 1.0)  # upper bounds: [0, 0.2), ..., [0.8, 1.0), and 1.0 itself
EXAMPLES_PER_REASON = 2


def bucket_labels() -> list[str]:
    return [f"{low:.1f}-{top:.1f}" for low, top in zip((0.0, *SCORE_BUCKETS), SCORE_BUCKETS)] + ["1.0"]


def score_table(data: str | Path, filters: list[str]) -> list[dict]:
    """Per filter, over every published row that has its score (kept and ended): how many, the
    mean, and how many fall in each fifth of [0, 1) and at 1.0; read a batch at a time."""
    table = {f: {"filter": f, "n": 0, "sum": 0.0, "buckets": [0] * (len(SCORE_BUCKETS) + 1)} for f in filters}
    for config in ("extraction", "rejected"):
        for row in iter_rows(data, config, ["scores"]) if filters else ():
            for f, v in (row.get("scores") or {}).items():
                if v is None or f not in table:
                    continue
                t = table[f]
                t["n"], t["sum"] = t["n"] + 1, t["sum"] + v
                t["buckets"][len(SCORE_BUCKETS) if v >= 1.0 else next(i for i, top in enumerate(SCORE_BUCKETS) if v < top)] += 1
    return [{**t, "mean": t["sum"] / t["n"] if t["n"] else None} for t in table.values()]


def reason_examples(data: str | Path, funnel: Funnel) -> list[dict]:
    """Every reason a record ended with, its count, and the first examples of it (id, origin,
    detail): the whole rejected config is read, a batch at a time, until each has its examples."""
    counts = {**{("rejected", r): n for r, n in funnel.rejected_by_reason.items()},
              **{("failed", r): n for r, n in funnel.failed_by_reason.items()}}
    examples: dict = {key: [] for key in counts}
    missing = {key for key in counts}
    for row in iter_rows(data, "rejected", ["id", "origin", "status", "reason", "detail"]) if counts else ():
        key = (row["status"], row["reason"])
        if key in missing:
            examples[key].append(row)
            if len(examples[key]) >= EXAMPLES_PER_REASON:
                missing.discard(key)
                if not missing:
                    break
    return [{"status": st, "reason": r, "n": n, "examples": examples[(st, r)]}
            for (st, r), n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]


def write_report(folder: Path, data: str | Path, name: str, funnel: Funnel, charts: dict[str, str], samples: int = 24,
                 filters: list[str] | None = None) -> Path:
    """`folder`/report.html: one file, images inlined, readable offline; the samples, the score
    table and the reasons' examples are read from the run's data at `data` (a path or URL),
    the charts from `folder`. The page filters its samples by id or text as you type."""
    kept = first_rows(data, "extraction", samples, ["id", "image", "prompt", "extraction", "questions", "scores"])
    rejected = first_rows(data, "rejected", samples, ["id", "image", "status", "reason", "detail", "questions", "extraction"])
    for row in kept + rejected:
        row["thumb"] = data_uri(thumbnail_png(row.pop("image")))
    summary = json.dumps({k: v for k, v in funnel.to_dict().items() if k != "filters"})
    filters = filters if filters is not None else [f.filter for f in funnel.filters]
    page = _TEMPLATE.render(name=name, funnel=funnel, kept=kept, rejected=rejected, summary=summary,
                            scores=score_table(data, filters), buckets=bucket_labels(), reasons=reason_examples(data, funnel),
                            charts={k: data_uri((folder / p).read_bytes()) for k, p in charts.items()})
    path = folder / "report.html"
    path.write_text(page)
    return path
