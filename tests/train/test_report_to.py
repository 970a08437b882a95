"""--report-to: the metrics of a real train_min run, read back by TensorBoard's own reader and
from W&B's offline run files; --profile: the trace and the table of a few steps."""

import json

import pytest

from pipelines.commands.run import run
from pipelines.config.recipe import read_recipe
from train_min.train import TrainConfig, train


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report_data")
    return run(read_recipe("quickstart", ["sources.0.synthetic.num_records=20", "sources.0.synthetic.image_size=64",
                                          "teacher.oracle.error_rate=0", f"output.dir={tmp / 'out'}", "cache.dir=null"])).out_dir


def _train(tmp_path, tiny_llama, published, report_to):
    return train(TrainConfig(task="reasoner", model=str(tiny_llama), data=str(published), out=str(tmp_path / report_to),
                             max_length=2048, batch_size=2, steps=4, eval_fraction=0.2, eval_every=2, progress=False,
                             device="cpu", report_to=report_to))


def test_tensorboard_gets_every_step_and_the_eval_loss(tmp_path, tiny_llama, published):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = _train(tmp_path, tiny_llama, published, "tensorboard")
    events = EventAccumulator(str(tmp_path / "tensorboard" / "runs"))
    events.Reload()
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [1, 2, 3, 4]
    assert [e.value for e in losses] == pytest.approx([r["loss"] for r in summary["history"]], rel=1e-5)
    assert [e.step for e in events.Scalars("eval/loss")] == [2, 4]
    assert {"train/lr", "train/grad_norm", "train/tokens"} <= set(events.Tags()["scalars"])


def test_wandb_offline_run_holds_the_last_values(tmp_path, tiny_llama, published, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    summary = _train(tmp_path, tiny_llama, published, "wandb")
    runs = list((tmp_path / "wandb" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    rows = _wandb_history(next(runs[0].glob("run-*.wandb")))
    assert [r["_step"] for r in rows] == [1, 2, 3, 4]
    assert [r["train/loss"] for r in rows] == pytest.approx([h["loss"] for h in summary["history"]], rel=1e-5)
    assert [r["eval/loss"] for r in rows if "eval/loss" in r] == pytest.approx([h["eval_loss"] for h in summary["history"] if "eval_loss" in h])


def _wandb_history(path):
    """The history rows of an offline W&B run file: a 7-byte header, then LevelDB-log records
    (crc 4, length 2, type 1; 32 KiB blocks) of `wandb_internal_pb2.Record` protobufs."""
    from wandb.proto import wandb_internal_pb2

    data, rows, pos, pending = path.read_bytes(), [], 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        if 32768 - pos % 32768 < 7:  # a block's tail too short for a header is padding
            pos += 32768 - pos % 32768
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0 and length == 0:
            continue
        pending += chunk
        if kind in (1, 4):  # FULL or LAST: a whole record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            if record.WhichOneof("record_type") == "history":
                rows.append({i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item})
    return rows


def test_none_writes_nothing_and_a_bad_choice_is_refused(tmp_path, tiny_llama, published):
    _train(tmp_path, tiny_llama, published, "none")
    assert not (tmp_path / "none" / "runs").exists() and not (tmp_path / "none" / "wandb").exists()
    with pytest.raises(ValueError, match="report_to must be one of"):
        _train(tmp_path, tiny_llama, published, "mlflow")


def test_profile_writes_a_trace_and_the_busiest_operators_of_the_last_steps(tmp_path, tiny_llama, published):
    """--profile 2 in a 5-step run: the trace holds exactly two profiled steps (those after
    the first two and a warm-up step), and top.txt says how busy they were and what took it."""
    train(TrainConfig(task="reasoner", model=str(tiny_llama), data=str(published), out=str(tmp_path / "p"), max_length=2048,
                      batch_size=2, steps=5, eval_fraction=0.0, eval_every=0, progress=False, device="cpu", report_to="none",
                      profile=2))
    trace = json.loads((tmp_path / "p" / "profile" / "trace.json").read_text())
    names = {e.get("name", "") for e in trace["traceEvents"]}
    assert sorted(n for n in names if n.startswith("ProfilerStep#")) == ["ProfilerStep#3", "ProfilerStep#4"]
    assert {"aten::mm", "aten::addmm"} & names  # the model's matrix products were recorded
    top = (tmp_path / "p" / "profile" / "top.txt").read_text()
    assert top.startswith("2 steps, ") and "CPU operators, all threads," in top
    assert "Self CPU" in top and "aten::" in top


def test_device_busy_is_the_union_of_kernels_copies_and_memsets():
    """A GPU profile's busy time: overlapping kernels count once, and the step annotation and
    the launch-queue marker that torch.profiler also puts on the device's track do not count."""
    from train_min.runtime import device_busy

    events = [{"cat": "kernel", "ts": 0, "dur": 10}, {"cat": "kernel", "ts": 5, "dur": 10},  # two streams: 0-15
              {"cat": "gpu_memcpy", "ts": 20, "dur": 5}, {"cat": "gpu_memset", "ts": 24, "dur": 2},  # 20-26
              {"cat": "kernel", "ts": 30, "dur": 0}, {"cat": "kernel", "ts": 1, "dur": 2},  # empty; inside 0-15
              {"cat": "gpu_user_annotation", "ts": 0, "dur": 100, "name": "ProfilerStep#3"},
              {"cat": "cuda_runtime", "ts": 40, "dur": 50, "name": "Command Buffer Full"}]
    assert device_busy({"traceEvents": events}) == pytest.approx(21e-6)
