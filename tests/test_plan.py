"""`extract-think plan`: a real run on the first records, scaled to the whole source; checked
against the whole run it estimates."""

import json
import subprocess
import sys

import pytest

from pipelines.commands.plan import estimate, source_size
from pipelines.commands.run import run
from pipelines.config import build
from pipelines.config.recipe import read_recipe
from pipelines.config.source_config import SourceConfig
from tests.sources.test_formats import _hub_parquet, _imagefolder, _llava

N = 120
SET = ["--set", f"sources.0.synthetic.num_records={N}", "--set", "sources.0.synthetic.image_size=96",
       "--set", "teacher.price.input_per_mtok=0.3", "--set", "teacher.price.output_per_mtok=1.2"]


def _plan(tmp_path, *extra):
    proc = subprocess.run([sys.executable, "-m", "pipelines.commands.cli", "plan", "quickstart", "--limit", "30", "--json", *SET,
                           "--set", f"cache.dir={tmp_path / 'cache'}", "--set", f"output.dir={tmp_path / 'out'}", *extra],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_the_estimate_is_close_to_the_whole_run_and_the_run_reuses_the_sample(tmp_path):
    plan = _plan(tmp_path)
    assert not (tmp_path / "out").exists()  # the recipe's output is never touched
    assert plan["sample"]["records"] == 30 and plan["records"] == N
    assert plan["sample"]["teacher_calls_paid"] == plan["sample"]["teacher_calls"] > 0 and plan["seconds"] > 0
    overrides = [SET[i + 1] for i in range(0, len(SET), 2)]
    whole = run(read_recipe("quickstart", [*overrides, f"cache.dir={tmp_path / 'cache'}", f"output.dir={tmp_path / 'out'}"])).funnel
    assert whole.cache_hits == plan["sample"]["teacher_calls"]  # the sample's replies are not paid twice
    calls = whole.teacher_requests + whole.cache_hits
    assert abs(plan["teacher_calls"] - calls) / calls < 0.1
    assert abs(plan["cost"] - whole.cost_with_cache) / whole.cost_with_cache < 0.1
    assert abs(plan["kept"] - whole.kept) / whole.kept < 0.2
    # planned again: answered from the cache, the same estimate of calls, tokens and cost
    again = _plan(tmp_path)
    assert again["sample"]["teacher_calls_paid"] == 0 and again["seconds"] is None and "every call" in again["seconds_basis"]
    assert (again["teacher_calls"], again["tokens"], again["cost"]) == (plan["teacher_calls"], plan["tokens"], plan["cost"])


def test_the_table_names_what_is_unknown(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pipelines.commands.cli", "plan", "quickstart", "--limit", "8",
                           "--set", "sources.0.synthetic.num_records=40", "--set", "cache.dir=null"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "| records | 8 | 40 |" in proc.stdout and "no price (teacher.price)" in proc.stdout


def test_source_sizes_of_each_kind(tmp_path):
    assert source_size(build(SourceConfig, _llava(tmp_path))) == 3
    hub = _hub_parquet(tmp_path)
    assert source_size(build(SourceConfig, hub)) == 4 and source_size(build(SourceConfig, {**hub, "limit": 3})) == 3
    assert source_size(build(SourceConfig, _imagefolder(tmp_path))) == 3


def test_an_unknown_size_gives_the_sample_only():
    from pipelines.observe.funnel import Funnel

    out = estimate(Funnel(records_in=5, kept=4, teacher_requests=20, run_seconds=1.0), None)
    assert out["records"] is None and "kept" not in out and out["keep_rate"] == pytest.approx(0.8)


def test_the_time_line_says_how_it_was_estimated_or_why_it_is_unknown():
    from pipelines.commands.plan import render
    from pipelines.observe.funnel import Funnel

    cached = estimate(Funnel(records_in=5, kept=4, cache_hits=20, run_seconds=1.0), 50)
    text = "\n".join(render({**cached, "limit": 5}))
    assert "Time: unknown: every call of the sample came from the cache" in text and "Time from" not in text
    paid = estimate(Funnel(records_in=5, kept=4, teacher_requests=20, run_seconds=1.0, flow_seconds=0.5), 50)
    assert "Time estimated from the sample's records flowing through" in "\n".join(render({**paid, "limit": 5}))
