"""The streamed feed: examples read from the memory-mapped publish and encoded in worker
processes as training needs them, with the semantics of the in-memory feed it replaces
(order, eval split, packing, resume), each process reading only its own slice, checkpoints
by default, and a model card in the final folder."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from pipelines.core.splits import in_test
from tests.train.runs import run_config
from train_min.data import Encoder, load_rows
from train_min.feed import Encoded, Order, Stream
from train_min.index import build_index
from train_min.train import train


def _timeless(summary):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in summary["history"]]


def _weights(out):
    return load_file(str(out / "final" / "model.safetensors"))


def test_the_stream_trains_exactly_as_the_examples_held_in_memory(published, tiny_idefics3, tmp_path):
    """Same examples, same order, same batches, same evaluation: the same history and weights,
    packed too; the stream's examples were encoded in a worker process."""
    for pack in (0, 2048):
        kw = dict(steps=4, eval_fraction=0.2, eval_every=2, pack=pack, workers=1)
        memory = train(run_config(tmp_path, tiny_idefics3, published, f"memory{pack}", feed="memory", **kw))
        stream = train(run_config(tmp_path, tiny_idefics3, published, f"stream{pack}", feed="stream", **kw))
        assert _timeless(memory) == _timeless(stream) and stream["eval_examples"] > 0
        a, b = _weights(tmp_path / f"memory{pack}"), _weights(tmp_path / f"stream{pack}")
        assert all(torch.equal(a[n], b[n]) for n in a)


def test_several_epochs_and_a_stop_mid_epoch_resume_exactly(published, tiny_llama, tmp_path):
    """Batch 16 of ~62 training rows: 3 steps an epoch; 10 steps are over 3 epochs; stopped
    after 5 (mid-epoch) and resumed, the run ends with the same history and weights."""
    kw = dict(task="reasoner", steps=10, batch_size=16, max_length=512, eval_fraction=0.3, eval_every=5)
    straight = train(run_config(tmp_path, tiny_llama, published, "straight", **kw))
    train(run_config(tmp_path, tiny_llama, published, "resumed", stop_after=5, **kw))
    resumed = train(run_config(tmp_path, tiny_llama, published, "resumed", **kw))
    assert _timeless(straight) == _timeless(resumed) and len(straight["history"]) == 10
    per_epoch = straight["train_examples"] // 16
    assert 3 * per_epoch < 10 and 5 % per_epoch  # over 3 epochs; stopped mid-epoch
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_each_process_reads_only_its_slice_and_together_the_epoch(published, tiny_idefics3, tmp_path):
    """Under torchrun with 2 gloo processes, each decodes only the rows of its own slices:
    disjoint, and their union is every example the steps used."""
    cfg = run_config(tmp_path, tiny_idefics3, published, "two", steps=3, batch_size=2, workers=0)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in vars(cfg).items() if not isinstance(v, bool)] + ["--no-progress", "--report-to=none"]
    script = ("import os, sys, json\nimport train_min.feed as feed\nfrom train_min.train import main\nseen = []\n"
              "get = feed.Encoded.__getitem__\n"
              "def record(self, i):\n    seen.append(int(i))\n    return get(self, i)\n"
              "feed.Encoded.__getitem__ = record\nmain(sys.argv[1:])\n"
              f"json.dump(seen, open(os.path.join({str(tmp_path)!r}, 'rank' + os.environ['RANK'] + '.json'), 'w'))\n")
    (tmp_path / "recording.py").write_text(script)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(tmp_path / "recording.py"),
                           *flags],
                          capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    seen = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert seen[0] and seen[1] and not set(seen[0]) & set(seen[1])
    rows = load_rows(str(published), "extraction")
    order = Order(np.array([i for i, r in enumerate(rows) if not in_test(r["id"], 0.0)]), 2, 0, 0, 2)
    used = [i for _ in range(3) for i in order.next()[1]]
    assert sorted(seen[0] + seen[1]) == sorted(used)  # prefetching runs ahead: the first 3 global batches at least
    assert json.loads((tmp_path / "two" / "final" / "train_config.json").read_text())["processes"] == 2


def test_a_stream_requests_only_its_own_rows_from_its_dataset(published, tiny_idefics3):
    from transformers import AutoProcessor

    rows = load_rows(str(published), "extraction")
    encoder = Encoder(AutoProcessor.from_pretrained(tiny_idefics3), "perception", 192)
    index = build_index(rows, encoder, 0.0)
    asked = {0: [], 1: []}

    class Recording(Encoded):
        def __getitem__(self, i):
            asked[self.rank].append(int(i))
            return super().__getitem__(i)

    for rank in (0, 1):
        dataset = Recording(rows, encoder)
        dataset.rank = rank
        stream = Stream(dataset, Order(index.train_rows(), 3, 0, rank, 2), index, 1, 0, False, 0)
        steps = [stream.next() for _ in range(4)]
        assert all(len(micro) == 1 and micro[0][0]["input_ids"].shape[0] == 3 for micro, _ in steps)
        stream.close()
    assert not set(asked[0]) & set(asked[1])
    order = Order(index.train_rows(), 3, 0, 0, 2)
    assert sorted(asked[0][:12] + asked[1][:12]) == sorted(i for _ in range(4) for i in order.next()[1])


def test_the_index_is_cached_and_says_what_each_row_is(published, tiny_idefics3, tmp_path, monkeypatch):
    from transformers import AutoProcessor

    rows = load_rows(str(published), "extraction")
    encoder = Encoder(AutoProcessor.from_pretrained(tiny_idefics3), "perception", 192)
    index = build_index(rows, encoder, 0.25, cache=tmp_path)
    first = encoder(rows[0])
    assert index.lengths[0] == len(first["input_ids"]) and index.targets[0] == first["n_targets"]
    assert index.held_out.tolist() == [in_test(i, 0.25) for i in rows["id"]] and 0 < index.held_out.sum() < len(rows)
    monkeypatch.setattr(Encoder, "__call__", lambda *a: pytest.fail("encoded again"))
    again = build_index(rows, encoder, 0.25, cache=tmp_path)  # from the cache: nothing encoded
    assert np.array_equal(again.lengths, index.lengths) and np.array_equal(again.targets, index.targets)
    monkeypatch.undo()
    short = build_index(rows, Encoder(encoder.processor, "perception", 40), 0.25, cache=tmp_path)  # another max_length: its own entry
    assert short.skipped == len(rows) and len(list(tmp_path.glob("*.npz"))) == 2


def test_checkpoints_by_default_kept_to_a_cap_and_a_damaged_one_skipped(published, tiny_llama, tmp_path):
    kw = dict(task="reasoner", max_length=512, save_every=1, keep_checkpoints=2)
    train(run_config(tmp_path, tiny_llama, published, "run", steps=5, **kw))
    folder = tmp_path / "run" / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["step-00000003.pt", "step-00000004.pt"]
    (folder / "step-00000004.pt").write_bytes(b"cut off")  # a kill mid-write on a file system without atomic renames
    resumed = train(run_config(tmp_path, tiny_llama, published, "run", steps=6, **kw))
    assert [h["step"] for h in resumed["history"]] == [1, 2, 3, 4, 5, 6]  # from step 3, the newest that loads
    by_time = train(run_config(tmp_path, tiny_llama, published, "clock", steps=3, save_every=0, save_minutes=1e-9, log_every=1,
                               task="reasoner", max_length=512))
    assert by_time["history"] and sorted(p.name for p in (tmp_path / "clock" / "checkpoints").iterdir()) == [
        "step-00000001.pt", "step-00000002.pt"]
    from train_min.train import TrainConfig

    assert TrainConfig().save_every > 0 and TrainConfig().save_minutes > 0  # a run saves without being asked


def test_the_final_folder_has_a_model_card(published, tiny_idefics3, tmp_path):
    from huggingface_hub import ModelCard
    from transformers import AutoModelForImageTextToText

    summary = train(run_config(tmp_path, tiny_idefics3, published, steps=3, eval_fraction=0.2, eval_every=3))
    final = tmp_path / "run" / "final"
    card = ModelCard.load(final / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "transformers" and data["pipeline_tag"] == "image-text-to-text" and "train_min" in data["tags"]
    assert "base_model" not in data  # a local path is no Hub id
    last = summary["history"][-1]
    assert f"final training loss: {last['loss']:.4f}" in card.text and f"final evaluation loss: {last['eval_loss']:.4f}" in card.text
    assert "steps: 3 of 3" in card.text and str(published) in card.text
    assert AutoModelForImageTextToText.from_pretrained(final) is not None
    from train_min.card import add_evaluation

    for accuracy in (0.5, 0.625):  # an evaluation run on the model puts its table in, replacing an earlier one
        cells = {"extract_think": {"all": {"n": 8, "correct": int(8 * accuracy), "accuracy": accuracy}},
                 "direct": {"all": {"n": 8, "correct": 0, "accuracy": 0.0}}}
        assert add_evaluation(final, f"| system | all |\n|---|---|\n| extract_think | {100 * accuracy} |", "Extract+Think evaluation.",
                              cells, "scenes")
    text = (final / "README.md").read_text()
    assert text.count("## Evaluation") == 1 and "| extract_think | 62.5 |" in text and "50.0" not in text
    data = ModelCard.load(final / "README.md").data
    assert data.to_dict()["library_name"] == "transformers"
    # the results as the Hub's model-index, read back by huggingface_hub
    results = {(r.metric_config, r.dataset_config): r.metric_value for r in data.eval_results}
    assert results == {("extract_think", "all"): 62.5, ("direct", "all"): 0.0}
    assert all(r.task_type == "visual-question-answering" and r.dataset_name == "scenes" for r in data.eval_results)
    assert not add_evaluation(tmp_path, "| x |", "not a train_min model")
