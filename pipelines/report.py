"""What a run shows about itself: charts for the card, examples, and a self-contained HTML
report (funnel, length histograms, a gallery of kept samples with their images, rejected
samples with their reasons), written beside the run's data before its folder is swapped in.

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
from pipelines.funnel import Funnel

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


def write_charts(folder: Path, funnel: Funnel) -> dict[str, str]:
    """PNG charts under folder/assets; returns {name: relative path}."""
    (folder / ASSETS).mkdir(exist_ok=True)
    charts = {
        "funnel": bar_chart("Records through the pipeline", funnel_rows(funnel)),
        "extraction_words": bar_chart("Kept extractions: words", list(funnel.lengths["extraction"].items()), (60, 150, 90)),
        "reasoning_words": bar_chart("Published reasoning traces: words", list(funnel.lengths["reasoning"].items()), (170, 90, 60)),
    }
    out = {}
    for name, png in charts.items():
        (folder / ASSETS / f"{name}.png").write_bytes(png)
        out[name] = f"{ASSETS}/{name}.png"
    return out


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


def write_report(folder: Path, data: str | Path, name: str, funnel: Funnel, charts: dict[str, str], samples: int = 24) -> Path:
    """`folder`/report.html: one file, images inlined, readable offline; the samples are read
    from the run's data at `data` (a path or URL), the charts from `folder`."""
    kept = first_rows(data, "extraction", samples, ["id", "image", "prompt", "extraction", "questions", "scores"])
    rejected = first_rows(data, "rejected", samples, ["id", "image", "status", "reason", "detail", "questions", "extraction"])
    for row in kept + rejected:
        row["thumb"] = data_uri(thumbnail_png(row.pop("image")))
    summary = json.dumps({k: v for k, v in funnel.to_dict().items() if k != "filters"})
    page = _TEMPLATE.render(name=name, funnel=funnel, kept=kept, rejected=rejected, summary=summary,
                            charts={k: data_uri((folder / p).read_bytes()) for k, p in charts.items()})
    path = folder / "report.html"
    path.write_text(page)
    return path
