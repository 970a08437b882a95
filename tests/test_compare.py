"""`extract-think compare`: two oracle arms at different error rates (the better one must
come out better, by the margin the injected rates imply, judged by the scenes' ground
truth), an oracle arm against a loopback OpenAI-compatible endpoint, and a rerun that pays
nothing."""

import json
import subprocess
import sys

import pytest

from pipelines.commands.compare import Arm, compare
from pipelines.config import ConfigError
from pipelines.config.recipe import read_recipe
from tests.fault_server import FaultServer
from tests.published import published_rows

FACT_ERRORS = "teacher.oracle.errors=[miscount,wrong_colour,invented_object]"
BASE = ["sources.0.synthetic.image_size=96", FACT_ERRORS]


@pytest.fixture(scope="module")
def unfiltered(tmp_path_factory):
    """Filters off, so each arm's mistakes reach its kept records, where the truth finds them."""
    tmp = tmp_path_factory.mktemp("compare")
    arms = [Arm("clean", ("teacher.oracle.error_rate=0.05",)), Arm("noisy", ("teacher.oracle.error_rate=0.5",))]
    overrides = [*BASE, "filters=[]", f"cache.dir={tmp / 'cache'}"]
    return tmp, arms, overrides, compare("quickstart", arms, 120, tmp / "cmp", overrides)


def test_the_better_teacher_comes_out_better_by_the_truth(unfiltered):
    _, _, _, result = unfiltered
    clean, noisy = result["arms"]
    assert clean["in"] == noisy["in"] == 120 and clean["kept"] == noisy["kept"] == 120  # nothing filtered
    # the truth finds what the oracle planted (its `injected` column, which the truth never reads)
    for arm in (clean, noisy):
        planted = {r["id"] for r in published_rows(arm["out_dir"], "extraction") if r["injected"]}
        assert arm["truth"]["checked"] == 120
        assert abs(arm["truth"]["with_errors"] - len(planted)) <= 3, (arm["name"], arm["truth"], len(planted))
    assert clean["truth"]["error_rate"] < 0.15 and noisy["truth"]["error_rate"] > 0.35
    assert noisy["truth"]["error_rate"] - clean["truth"]["error_rate"] > 0.3
    pair = result["pairs"][0]
    assert pair["both"] == 120 and pair["fact_agreement"] < 0.9  # the noisy arm's miscounts disagree on the asked facts
    assert result["disagreements"] == len(pair["facts_differ"]) > 0


def test_the_report_shows_the_tables_and_the_gallery(unfiltered):
    tmp, _, _, result = unfiltered
    html = (tmp / "cmp" / "compare.html").read_text()
    assert json.loads((tmp / "cmp" / "compare.json").read_text())["arms"][1]["name"] == "noisy"
    assert "<h2>Agreement</h2>" in html and "Rejection rate per filter" in html
    assert html.count('class="rec"') == min(24, result["disagreements"]) and html.count("data:image/png;base64,") >= 1
    assert "not in the scene:" in html  # the wrong sentence is shown
    # arms are timed on the records' flow, which leaves out the first arm's one-time start-up, and the report says so
    assert "<th>flow s</th>" in html and "pays the one-time start-up" in html
    assert all(0 < a["flow_seconds"] <= a["run_seconds"] for a in result["arms"])


def test_a_rerun_pays_nothing(unfiltered):
    tmp, arms, overrides, first = unfiltered
    again = compare("quickstart", arms, 120, tmp / "cmp", overrides)
    assert [a["teacher_calls_paid"] for a in again["arms"]] == [0, 0]
    assert [a["teacher_calls"] for a in again["arms"]] == [a["teacher_calls"] for a in first["arms"]]
    assert [a["truth"] for a in again["arms"]] == [a["truth"] for a in first["arms"]]


def test_with_the_filters_the_noisy_arm_loses_records_not_truth(tmp_path):
    arms = [Arm("clean", ("teacher.oracle.error_rate=0.05",)), Arm("noisy", ("teacher.oracle.error_rate=0.5",))]
    result = compare("quickstart", arms, 60, tmp_path / "cmp", [*BASE, "cache.dir=null"])
    clean, noisy = result["arms"]
    assert noisy["keep_rate"] < clean["keep_rate"] and noisy["truth"]["error_rate"] <= 0.05
    assert sum(noisy["filters"][f] or 0 for f in noisy["filters"]) > sum(clean["filters"][f] or 0 for f in clean["filters"])
    pair = result["pairs"][0]
    assert pair["both"] + len(pair["only_a"]) + len(pair["only_b"]) + pair["neither"] == pair["records"] == 60


def test_an_oracle_arm_against_a_loopback_endpoint(tmp_path, monkeypatch):
    server = FaultServer(answer="There are 3 red beakers on the bench.\nAnswer: A")
    monkeypatch.setenv("ET_TEST_KEY", "sk-never-logged")
    endpoint = ("teacher.backend=openai", "teacher.model=served", f"teacher.openai.base_url={server.url}",
                "teacher.openai.api_key_env=ET_TEST_KEY", "teacher.price.input_per_mtok=1.0", "teacher.price.output_per_mtok=4.0")
    try:
        result = compare("quickstart", [Arm("oracle", ()), Arm("served", endpoint)], 12, tmp_path / "cmp",
                         [*BASE, f"cache.dir={tmp_path / 'cache'}", "stages.think.sampling.n=1"])
    finally:
        server.close()
    oracle, served = result["arms"]
    assert served["teacher_calls_paid"] == server.served - 1 > 0 and served["tokens"] > 0  # + the pre-flight's one request
    assert served["cost"] > 0 and oracle["cost"] is None  # only the endpoint has a price
    assert served["teacher"]["extraction"] == "openai:served" and oracle["teacher"]["extraction"] == "oracle:oracle"
    assert oracle["kept"] > served["kept"]  # one canned reply cannot restate every question
    pair = result["pairs"][0]
    assert len(pair["only_a"]) == oracle["kept"] - pair["both"] and result["gallery"][: len(pair["only_a"])] == sorted(pair["only_a"])[:24]
    assert "sk-never-logged" not in (tmp_path / "cmp" / "compare.json").read_text()


def test_the_cli_needs_two_named_arms(tmp_path):
    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pipelines.commands.cli", "compare", "quickstart", *args, "--out", str(tmp_path / "c")],
                              capture_output=True, text=True, timeout=300)

    one = cli("--teacher", "only", "teacher.oracle.error_rate=0.1")
    assert one.returncode == 2 and "at least two arms" in one.stderr
    bad = cli("--teacher", "../up", "teacher.oracle.error_rate=0.1", "--teacher", "b")
    assert bad.returncode == 2 and "names a folder" in bad.stderr
    ok = cli("--teacher", "a", "teacher.oracle.error_rate=0", "--teacher", "b", "teacher.oracle.error_rate=0.3", "--limit", "10",
             "--set", "sources.0.synthetic.image_size=64", "--set", "cache.dir=null")
    assert ok.returncode == 0, ok.stderr
    assert "a / b: kept by both" in ok.stdout and (tmp_path / "c" / "compare.html").exists()
    # progress per arm while it runs (off a terminal: log lines), then each arm's outcome with its flowing time
    said = ok.stdout.splitlines()
    assert said.index("arm 1/2 'a': 10 records") < said.index("arm 2/2 'b': 10 records")
    assert any(line.startswith("arm 'b': ") and "s of records flowing" in line for line in said)
    assert ok.stderr.count("] written: 10/10 records") == 2
    with pytest.raises(ConfigError, match="not a comparison"):
        (tmp_path / "mine").mkdir()
        (tmp_path / "mine" / "notes.txt").write_text("keep")
        compare(read_recipe("quickstart"), [Arm("a"), Arm("b")], 4, tmp_path / "mine")


def test_the_default_folder_is_named_safely_from_the_recipe_name(tmp_path, monkeypatch):
    """`name: x/../../y` in a recipe names the default folder `out/compare-<hash>`, inside out/."""
    from pipelines.commands.cli import main

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code = main(["compare", "quickstart", "--teacher", "a", "--teacher", "b", "teacher.oracle.error_rate=0.3", "--limit", "4",
                 "--set", "name=x/../../escaped", "--set", "sources.0.synthetic.image_size=64", "--set", "cache.dir=null"])
    assert code == 0
    assert not (tmp_path / "escaped").exists() and not (work / "escaped").exists()
    (folder,) = (work / "out").iterdir()
    assert folder.name.startswith("compare-h-") and (folder / "compare.html").is_file()
