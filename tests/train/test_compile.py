"""train_min's --compile on tiny models on the CPU: the compiled towers train as the eager
model, packed rows keep one width, the recompile warning, and which torch.compile mode each
setting asks for (CUDA graphs apply on a GPU only; their speed is in tests/bench/)."""

import pytest
import torch

from tests.train.runs import run_config
from train_min.train import train


def test_compiled_towers_train_as_the_eager_model(published, tiny_llama, tiny_idefics3, tmp_path):
    """--compile on (with CUDA, the default adds CUDA graphs) on the CPU: the same losses as
    eager; lengths padded to a multiple of 64 (bounded recompiles) change nothing but the shapes."""
    from transformers import AutoModelForImageTextToText

    from train_min.runtime import compile_towers

    assert compile_towers(AutoModelForImageTextToText.from_pretrained(tiny_idefics3)) == ["text_model", "vision_model"]
    runs = [train(run_config(tmp_path, tiny_llama, published, f"c{c}", task="reasoner", steps=3, max_length=512, compile=c))
            for c in ("off", "on", "reduce-overhead")]  # CUDA graphs apply on a GPU only; the mode reaches the compiler
    assert runs[0]["config"]["pad_multiple"] == 0
    for other in runs[1:]:
        for a, b in zip(runs[0]["history"], other["history"], strict=True):
            assert a["tokens"] == b["tokens"] and a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    with pytest.raises(ValueError, match="compile: 'yes' is not one of"):
        train(run_config(tmp_path, tiny_llama, published, "cyes", task="reasoner", steps=1, compile="yes"))


def test_a_packed_compiled_run_pads_every_row_to_the_pack(published, tiny_llama, tmp_path, monkeypatch):
    """Packed and compiled, every row is as wide as the pack (rounded up to the pad multiple),
    so only the row count varies between steps (each new shape is a recompile); the losses
    are the eager packed run's."""
    import train_min.feed as feed_module  # where the training loop's batches are packed

    widths, packed = [], feed_module.pack

    def recording(*args, **kw):
        batch = packed(*args, **kw)
        widths.append(batch["input_ids"].shape[1])
        return batch

    monkeypatch.setattr(feed_module, "pack", recording)
    runs, seen = [], []
    for c in ("off", "on"):
        runs.append(train(run_config(tmp_path, tiny_llama, published, f"pc{c}", task="reasoner", steps=2, batch_size=8, max_length=512,
                               pack=1000, compile=c, workers=0)))  # packed in this process, where it is recorded
        seen.append(widths[:])
        widths.clear()
    assert max(seen[0]) < 1024 and set(seen[1]) == {1024}  # eager: only as wide as the longest row
    for a, b in zip(*(r["history"] for r in runs), strict=True):
        assert a["targets"] == b["targets"] > 0 and a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def test_packed_rows_compile_once_more_whatever_their_count(tiny_llama):
    """compile_towers(dynamic=None), as packed runs use it: the first new row count makes the
    row dimension symbolic, so four row counts are two compiles; static shapes are four."""
    from torch._dynamo.utils import counters
    from transformers import AutoModelForCausalLM

    from train_min.runtime import compile_towers

    compiles = []
    for dynamic in (False, None):
        torch._dynamo.reset()
        model = AutoModelForCausalLM.from_pretrained(tiny_llama)
        compile_towers(model, dynamic=dynamic)
        before = counters["stats"]["unique_graphs"]
        for rows in (2, 3, 4, 5):
            model.model(input_ids=torch.ones(rows, 64, dtype=torch.long), position_ids=torch.arange(64).repeat(rows, 1))
        compiles.append(counters["stats"]["unique_graphs"] - before)
    assert compiles == [4, 2]


def test_a_compiled_run_warns_when_its_lengths_can_outrun_the_recompile_limit(published, tiny_llama, tmp_path):
    """Multiples of 64 up to 1024 are 16 shapes, more than torch.compile recompiles for (8):
    the run says so and names a multiple that fits; 512 (8 shapes) and packing say nothing."""
    import warnings

    from train_min.runtime import shapes_warning

    assert shapes_warning(512, 64) is None and shapes_warning(1100, 275) is None
    assert "--pad-multiple 192 keeps them to 8" in shapes_warning(1100, 64)
    with pytest.warns(UserWarning, match="1024 padded to a multiple of 64 can be 16 shapes.*--pad-multiple 128"):
        train(run_config(tmp_path, tiny_llama, published, "w", task="reasoner", steps=1, max_length=1024, compile="on"))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        train(run_config(tmp_path, tiny_llama, published, "wp", task="reasoner", steps=1, max_length=1024, compile="on", pack=1024))
    assert not [w for w in seen if "recompile" in str(w.message)]


def test_the_compile_mode_reaches_torch_compile(tiny_idefics3, monkeypatch):
    from transformers import AutoModelForImageTextToText

    from train_min.runtime import compile_towers

    seen = []
    monkeypatch.setattr(torch.nn.Module, "compile", lambda self, **kw: seen.append(kw))
    compile_towers(AutoModelForImageTextToText.from_pretrained(tiny_idefics3), "reduce-overhead")
    assert seen == [{"dynamic": False, "mode": "reduce-overhead"}] * 2


def test_compile_auto_is_cuda_graphs_in_one_cuda_process_only():
    """--compile auto: eager on the CPU, CUDA graphs for one CUDA process (its step would wait
    on the host's kernel launches), plain compile under DDP; the other values say their mode."""
    from train_min.train import compile_mode

    assert [compile_mode("auto", d, w) for d, w in (("cpu", 1), ("cpu", 2), ("cuda", 1), ("cuda", 2))] == \
        [None, None, "reduce-overhead", "default"]
    assert [compile_mode(c, "cpu", 2) for c in ("on", "off", "reduce-overhead", "max-autotune")] == \
        ["default", None, "reduce-overhead", "max-autotune"]
