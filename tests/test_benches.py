"""Every benchmark in tests/bench/ started at a tiny size, as its own command, so none can rot
unnoticed: each must run to its end and print what it measured. (The figures are measured at full
size by hand; docs/benchmarks.md, docs/scaling.md and docs/train_min.md give them.)"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "tests" / "bench"
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench_data(tmp_path_factory):
    """A small publish and its TRL exports, as the GPU benches' docstring makes them."""
    from pipelines.commands.run import run
    from pipelines.config.recipe import read_recipe
    from pipelines.publishing.exports import export

    tmp = tmp_path_factory.mktemp("bench_data")
    out = run(read_recipe("quickstart", ["sources.0.synthetic.num_records=24", "sources.0.synthetic.image_size=64",
                                         f"output.dir={tmp / 'pub'}", "cache.dir=null"])).out_dir
    return out, export(out, "trl", tmp / "trl"), export(out, "trl", tmp / "trl-r", config="reasoning")


def _tiny(name, bench_data, tmp_path):
    pub, trl, trl_r = bench_data
    return {
        "bench_bad_inputs": [],
        "bench_calibrate": ["--seeds", "1"],
        "bench_faults": ["--records", "12", "--hostile"],
        "bench_filters": ["--records", "30", "--image-size", "64"],
        "bench_fleet": ["--sizes", "1,2", "--capacity", "4", "--latency", "0.05", "--records-per-endpoint", "4", "--kill", "2"],
        "bench_memory": ["--small", "10", "--large", "20", "--image-size", "64"],
        "bench_overhead": ["--records", "40"],
        "bench_realtext": [],
        "bench_resume": ["--records", "40", "--kills", "1"],
        "bench_saturation": ["--records", "8", "--capacity", "4", "--latency", "0.05", "--settings", "8x4"],
        "bench_scale": ["--records", "200", "--baseline", "100", "--every", "1"],
        "bench_secrets": ["--records", "8"],
        "bench_train_gpu": ["--data", str(pub), "--trl-data", str(trl), "--shape", "tiny", "--device", "cpu", "--steps", "3",
                            "--warmup", "1", "--batch", "4"],
        "bench_train_gpu_suite": ["--data", str(pub), "--trl-data", str(trl), "--trl-reasoning", str(trl_r), "--shape", "tiny",
                                  "--device", "cpu", "--steps", "3", "--lines", "smolvlm16", "--runs", "train_min,train_min memory",
                                  "--out", str(tmp_path / "suite.md")],
        "bench_train_memory": ["--records", "30,60", "--real-up-to", "30", "--memory-up-to", "30"],
        "bench_vllm_pipeline": ["--records", "4", "--repeats", "1", "--max-tokens", "4", "--batch", "4", "--threads", "2",
                                "--image-size", "64", "--enforce-eager"],
    }[name]


BENCHES = sorted(p.stem for p in BENCH.glob("bench_*.py"))


def test_every_benchmark_is_here():
    assert len(BENCHES) >= 15 and "bench_scale" in BENCHES and "bench_fleet" in BENCHES


@pytest.mark.parametrize("name", BENCHES)
def test_the_benchmark_runs_at_a_tiny_size(name, bench_data, tmp_path):
    if name == "bench_vllm_pipeline":
        pytest.importorskip("vllm")
    done = subprocess.run([sys.executable, "-m", f"tests.bench.{name}", *_tiny(name, bench_data, tmp_path)], cwd=REPO,
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(tmp_path), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-3000:])
    assert len(done.stdout.strip().splitlines()) >= 2, done.stdout[-2000:]  # what it measured, printed


def test_the_scale_benchmarks_components_run_at_a_tiny_size(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tests.bench.bench_scale", "--components", "--records", "300"], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dedup at 300 records" in done.stdout and "decontamination at 300 records" in done.stdout
