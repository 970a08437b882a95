"""What a publish holds besides the data: bounded shards, a card that renders the run's real
numbers (cost, charts, examples), and a self-contained HTML report."""

import base64
import io
import json
import re
from collections import Counter
from html.parser import HTMLParser

import datasets
import pyarrow.parquet as pq
import pytest
from PIL import Image

from pipelines.commands.run import run
from pipelines.config.recipe import read_recipe
from tests.published import published_rows

N, PER_SHARD = 40, 7


@pytest.fixture(scope="module")
def outcome(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    return run(read_recipe("quickstart", [f"sources.0.synthetic.num_records={N}", "sources.0.synthetic.image_size=96",
                                          "teacher.oracle.error_rate=0.5", f"output.rows_per_shard={PER_SHARD}",
                                          f"output.dir={tmp / 'out'}", "cache.dir=null"]))


def test_shards_are_bounded_renumbered_and_load_both_ways(outcome):
    out, f = outcome.out_dir, outcome.funnel.to_dict()
    want = {"extraction": f["kept"], "reasoning": f["reasoning_rows"], "rejected": f["rejected"] + f["failed"]}
    for config, rows in want.items():
        shards = sorted((out / config).glob("*.parquet"))
        sizes = [pq.ParquetFile(s).metadata.num_rows for s in shards]
        assert sum(sizes) == rows and max(sizes) <= PER_SHARD and len(shards) == f["shards"][config]
        assert [s.name for s in shards] == [f"train-{outcome.run_id}-{i:05d}-of-{len(shards):05d}.parquet" for i in range(len(shards))]
        assert len(published_rows(str(out), config)) == rows
        assert sum(1 for _ in published_rows(str(out), config, streaming=True)) == rows
    assert published_rows(str(out), "extraction").features["image"] == datasets.Image()


def test_the_card_renders_the_runs_numbers(outcome):
    out, f = outcome.out_dir, outcome.funnel.to_dict()
    card = (out / "README.md").read_text()
    saved = json.loads((out / "funnel.json").read_text())
    assert saved["kept"] == f["kept"] and saved["run_id"] == outcome.run_id
    tokens = f["prompt_tokens"] + f["completion_tokens"]
    assert f"| teacher requests | {f['teacher_requests']} (+ {f['cache_hits']} from the cache) | {f['teacher_requests'] / f['kept']:.2f} |" in card
    assert f"| {tokens} ({f['prompt_tokens']} + {f['completion_tokens']}) | {tokens / f['kept']:.1f} |" in card
    assert f"| **kept** | **{f['kept']}** |" in card
    for reason, n in f["rejected_by_reason"].items():
        assert f"| rejected: `{reason}` | {n} |" in card
    assert sum(f["lengths"]["extraction"].values()) == f["kept"]
    assert sum(f["lengths"]["reasoning"].values()) == f["reasoning_rows"]
    from pipelines.publishing.report import used_buckets  # the charts leave out empty buckets above and below the lengths seen

    assert used_buckets({"<25": 0, "25-49": 2, "50-99": 0, "100-199": 1, "200+": 0}) == [("25-49", 2), ("50-99", 0), ("100-199", 1)]
    assert used_buckets({"<25": 0, "25-49": 0}) == [("<25", 0), ("25-49", 0)]
    for name in ("funnel", "extraction_words", "reasoning_words"):
        assert f"![{name}](assets/{name}.png)" in card
        with Image.open(out / "assets" / f"{name}.png") as im:
            assert im.format == "PNG" and im.width > 300
    ids = set(published_rows(str(out), "extraction")["id"])
    shown = re.findall(r"^\*\*([0-9a-f]{20})\*\* - questions", card, re.M)
    assert len(shown) == 3 and set(shown) <= ids
    header = card.split("---")[1]
    assert "license: cc0-1.0" in header and "image-text-to-text" in header and "n<1K" in header


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.links, self.cards, self.text = [], [], Counter(), []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag == "link" or (tag == "script" and a.get("src")) or (tag == "a" and a.get("href", "").startswith("http")):
            self.links.append(a)
        if tag == "div" and "card" in a.get("class", ""):
            self.cards["bad" if "bad" in a["class"] else "kept"] += 1

    def handle_data(self, data):
        self.text.append(data)


def test_the_html_report_is_self_contained(outcome):
    out, f = outcome.out_dir, outcome.funnel.to_dict()
    page = _Page()
    page.feed((out / "report.html").read_text())
    assert page.links == []  # no stylesheet, script or link to fetch (the search box's script is inline)
    assert page.images and all(src.startswith("data:image/png;base64,") for src in page.images if src)
    for src in page.images:
        if src:
            with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
                im.load()
    assert page.cards["kept"] == min(24, f["kept"]) and page.cards["bad"] == min(24, f["rejected"] + f["failed"])
    text = " ".join(page.text)
    rejected = published_rows(str(out), "rejected")
    for row in list(rejected)[: min(24, len(rejected))]:
        assert row["id"] in text and row["reason"] in text
    assert f"{f['kept']} kept" in text


def test_an_interrupted_publish_leaves_the_previous_version_intact(outcome, tmp_path, monkeypatch):
    import shutil

    import pipelines.commands.run as run_module

    out = tmp_path / "out"
    shutil.copytree(outcome.out_dir, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def boom(*args, **kwargs):
        raise RuntimeError("disk full while writing the report")

    monkeypatch.setattr(run_module, "write_report", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        run(read_recipe("quickstart", ["sources.0.synthetic.num_records=5", "sources.0.synthetic.image_size=64",
                                       f"output.dir={out}", "cache.dir=null"]))
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no staging folder left behind


def test_the_report_escapes_what_the_data_holds(tmp_path):
    """A reason or detail from the data is text, never markup, in the HTML report."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.observe.funnel import Funnel
    from pipelines.publishing.report import write_report

    (tmp_path / "data" / "rejected").mkdir(parents=True)
    rows = {"id": ["r1"], "image": [None], "status": ["rejected"], "reason": ["bad<b>"], "questions": [["q?"]],
            "detail": ['<script>alert("x")</script>'], "extraction": ["a & b"]}
    pq.write_table(pa.table(rows), tmp_path / "data" / "rejected" / "train-0.parquet")
    page = write_report(tmp_path, tmp_path / "data", "<name>", Funnel(records_in=1, rejected=1), {}).read_text()
    assert page.count("<script>") == 1 and '<script>alert' not in page  # the search box's own script only
    assert "&lt;script&gt;" in page and "bad&lt;b&gt;" in page and "a &amp; b" in page
    assert "&lt;name&gt;" in page


def test_the_report_tables_every_reason_and_each_filters_scores(outcome):
    """Every reason a record ended with, with its count and an example from the data; each
    filter's scores over every published row (the buckets add up); the run time."""
    from pipelines.publishing.report import reason_examples, score_table

    out, funnel = outcome.out_dir, outcome.funnel
    html = (out / "report.html").read_text()
    reasons = reason_examples(out, funnel)
    assert {(r["status"], r["reason"]): r["n"] for r in reasons} == {
        **{("rejected", k): v for k, v in funnel.rejected_by_reason.items()}, **{("failed", k): v for k, v in funnel.failed_by_reason.items()}}
    rejected = published_rows(str(out), "rejected")
    by_id = {r["id"]: r for r in rejected}
    for r in reasons:
        assert 1 <= len(r["examples"]) <= 2 and all(by_id[e["id"]]["reason"] == r["reason"] for e in r["examples"])
        assert f"<td>{r['reason']}</td><td>{r['n']}</td>" in html
    scores = score_table(out, [f.filter for f in funnel.filters])
    kept = published_rows(str(out), "extraction")
    for t in scores:
        having = [row["scores"][t["filter"]] for row in [*kept, *rejected] if row["scores"][t["filter"]] is not None]
        assert t["n"] == len(having) == sum(t["buckets"]) and t["buckets"][-1] == sum(v >= 1.0 for v in having)
        assert f"<td>{t['filter']}</td><td>{t['n']}</td>" in html
    assert f"in {funnel.run_seconds:.1f} s" in html and 'id="find"' in html


def test_the_report_opens_in_headless_chromium_and_finds_samples(outcome, tmp_path):
    """The report as a reader sees it: loaded in Debian's Chromium (installed by `make test`)
    through Playwright, no script error, every image decoded, the score and reason tables
    filled, the search box finding a sample by id and by text; a screenshot is kept."""
    import os
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None and not os.environ.get("CI"):
        pytest.skip("no chromium here: `make test` installs it (Debian's chromium)")
    assert chromium, "chromium is missing: `make test` installs it (apt-get install chromium)"
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto((outcome.out_dir / "report.html").as_uri())
        assert page.title() == "extract-think run: quickstart"
        images = page.eval_on_selector_all("img", "els => els.map(e => e.complete && e.naturalWidth > 0)")
        assert images and all(images)  # charts and thumbnails, all inlined and decodable
        filters = [f.filter for f in outcome.funnel.filters]
        score_rows = page.locator("h2:has-text('Scores per filter') + table tr").all_inner_texts()[1:]
        assert [r.split("\t")[0] for r in score_rows] == filters
        reasons = page.locator("h2:has-text('Why records ended') + table tr").count() - 1
        assert reasons == len(outcome.funnel.rejected_by_reason) + len(outcome.funnel.failed_by_reason) > 0
        cards = page.locator(".card")
        total = cards.count()
        some_id = page.locator(".card .id").first.inner_text()
        page.fill("#find", some_id)
        visible = [c for c in cards.all() if c.is_visible()]
        assert len(visible) == 1 and some_id in visible[0].inner_text() and page.inner_text("#found") == "1 shown"
        page.fill("#find", "beaker")
        texts = [c.inner_text().lower() for c in cards.all()]
        shown = sum(c.is_visible() for c in cards.all())
        assert 0 < shown == sum("beaker" in t for t in texts) < total and page.inner_text("#found") == f"{shown} shown"
        page.fill("#find", "")
        assert sum(c.is_visible() for c in cards.all()) == total and page.inner_text("#found") == ""
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    assert not errors, errors
    assert Image.open(tmp_path / "report.png").size[1] > 1000
