"""What a run shows about itself: charts for the card, examples, and a self-contained HTML
report (funnel, length histograms, a gallery of kept samples with their images, rejected
samples with their reasons), written beside the run's data before its folder is swapped in.

Lengths are counted by the pipeline into word-count buckets (Beam counters, so they cost
nothing extra and add up across workers); samples are the first rows of the first shard of
each config, read back from the parquet the pipeline wrote.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import fsspec
import pyarrow.parquet as pq
from PIL import Image, ImageDraw, ImageFont

BUCKETS = (25, 50, 100, 200, 400, 800, 1600)
LABELS = tuple(f"<{BUCKETS[0]}" if i == 0 else f"{BUCKETS[i - 1]}-{b - 1}" for i, b in enumerate(BUCKETS)) + (f"{BUCKETS[-1]}+",)
ASSETS = "assets"


def bucket(words: int) -> str:
    """The histogram bucket of a text of `words` words."""
    return next((LABELS[i] for i, b in enumerate(BUCKETS) if words < b), LABELS[-1])


def histogram(counters: dict[str, int], kind: str) -> list[tuple[str, int]]:
    """(bucket, count) in bucket order, from counters named `length.<kind>.<bucket>`."""
    return [(label, counters.get(f"length.{kind}.{label}", 0)) for label in LABELS]


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


def funnel_rows(funnel: dict) -> list[tuple[str, int]]:
    steps = funnel.get("filters") or []
    rows = [("records in", funnel["in"])]
    if steps:
        rows.append(("reached the filters", steps[0]["in"]))
    return rows + [(f"after {f['filter']}", f["passed"]) for f in steps] + [("kept", funnel["kept"])]


def write_charts(folder: Path, funnel: dict, counters: dict[str, int]) -> dict[str, str]:
    """PNG charts under folder/assets; returns {name: relative path}."""
    (folder / ASSETS).mkdir(exist_ok=True)
    charts = {
        "funnel": bar_chart("Records through the pipeline", funnel_rows(funnel)),
        "extraction_words": bar_chart("Kept extractions: words", histogram(counters, "extraction"), (60, 150, 90)),
        "reasoning_words": bar_chart("Published reasoning traces: words", histogram(counters, "reasoning"), (170, 90, 60)),
    }
    out = {}
    for name, png in charts.items():
        (folder / ASSETS / f"{name}.png").write_bytes(png)
        out[name] = f"{ASSETS}/{name}.png"
    return out


def first_rows(folder: str | Path, config: str, n: int, columns: list[str]) -> list[dict]:
    """The first `n` rows of a config (its first shard), only `columns`; `folder` is a
    local path or any fsspec URL."""
    fs, _ = fsspec.core.url_to_fs(str(folder))
    pattern = f"{str(folder).rstrip('/')}/{config}/*.parquet"
    rows: list[dict] = []
    for shard in sorted(fs.glob(pattern)):
        with fs.open(shard, "rb") as f:
            for batch in pq.ParquetFile(f).iter_batches(batch_size=n, columns=columns):
                rows += batch.to_pylist()
                if len(rows) >= n:
                    return rows[:n]
    return rows


def thumbnail_png(image: dict | None, side: int = 256) -> bytes | None:
    if not image or not image.get("bytes"):
        return None
    with Image.open(io.BytesIO(image["bytes"])) as im:
        im = im.convert("RGB")
        im.thumbnail((side, side))
        buf = io.BytesIO()
        im.save(buf, "PNG")
        return buf.getvalue()


def _data_uri(png: bytes | None) -> str:
    return f"data:image/png;base64,{base64.b64encode(png).decode()}" if png else ""


def _esc(text) -> str:
    return html.escape("" if text is None else str(text))


def write_report(folder: Path, data: str | Path, name: str, funnel: dict, charts: dict[str, str], samples: int = 24) -> Path:
    """`folder`/report.html: one file, images inlined, readable offline; the samples are read
    from the run's data at `data` (a path or URL), the charts from `folder`."""
    kept = first_rows(data, "extraction", samples, ["id", "image", "prompt", "extraction", "questions", "scores"])
    rejected = first_rows(data, "rejected", samples, ["id", "image", "status", "reason", "detail", "questions", "extraction"])
    chart_imgs = "".join(f'<img alt="{k}" src="{_data_uri((folder / p).read_bytes())}">' for k, p in charts.items())
    steps = "".join(f"<tr><td>{_esc(f['filter'])}</td><td>{f['in']}</td><td>{f['rejected']}</td><td>{f['passed']}</td>"
                    f"<td>{_esc(', '.join(f'{r} {n}' for r, n in f['reasons'].items()))}</td></tr>" for f in funnel.get("filters", []))
    cards = "".join(
        f'<div class="card"><img src="{_data_uri(thumbnail_png(r["image"]))}"><p class="id">{_esc(r["id"])}</p>'
        f'<p><b>Prompt</b> {_esc(r["prompt"])}</p><p><b>Extraction</b> {_esc(r["extraction"])}</p>'
        f'<p><b>Questions</b> {_esc(" | ".join(r["questions"] or []))}</p><p class="id">scores {_esc(r["scores"])}</p></div>'
        for r in kept)
    bad = "".join(
        f'<div class="card bad"><img src="{_data_uri(thumbnail_png(r["image"]))}"><p class="id">{_esc(r["id"])}</p>'
        f'<p><b>{_esc(r["status"])}: {_esc(r["reason"])}</b></p><p>{_esc(r["detail"])}</p>'
        f'<p><b>Questions</b> {_esc(" | ".join(r["questions"] or []))}</p><p><b>Extraction</b> {_esc(r["extraction"])}</p></div>'
        for r in rejected)
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>extract-think run: {_esc(name)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1400px}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:4px 8px}}
.grid{{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}}.card{{border:1px solid #ddd;padding:8px;font-size:13px}}
.card img{{max-width:100%}}.bad{{background:#fff6f4}}.id{{color:#777;font-size:11px}}.charts img{{margin:4px;border:1px solid #eee}}</style></head><body>
<h1>extract-think run: {_esc(name)}</h1>
<p>{funnel['in']} records in, <b>{funnel['kept']} kept</b>, {funnel['rejected']} rejected, {funnel['failed']} failed.
Teacher: {funnel['teacher_requests']} requests ({funnel['cache_hits']} from the cache), {funnel['prompt_tokens']} prompt and
{funnel['completion_tokens']} completion tokens.</p>
<div class="charts">{chart_imgs}</div>
<h2>Filters, in order</h2><table><tr><th>filter</th><th>in</th><th>rejected</th><th>passed</th><th>reasons</th></tr>{steps}</table>
<h2>Kept samples ({len(kept)} of {funnel['kept']})</h2><div class="grid">{cards}</div>
<h2>Rejected and failed samples ({len(rejected)} of {funnel['rejected'] + funnel['failed']})</h2><div class="grid">{bad}</div>
<p class="id">funnel.json: {_esc(json.dumps({k: v for k, v in funnel.items() if k != 'filters'}))}</p>
</body></html>"""
    path = folder / "report.html"
    path.write_text(page)
    return path
