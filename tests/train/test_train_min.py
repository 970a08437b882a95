"""train_min on tiny models built at test time, on a dataset this project published."""

import pytest
import torch
from safetensors.torch import load_file

from tests.train.runs import run_config
from train_min.data import IGNORE, Encoder, load_rows
from train_min.train import TrainConfig, lr_at, train


def _weights(out):
    return load_file(str(out / "final" / "model.safetensors"))


def test_labels_are_ignored_exactly_outside_the_assistant_span(published, tiny_idefics3, tiny_llama):
    from transformers import AutoProcessor, AutoTokenizer

    processor = AutoProcessor.from_pretrained(tiny_idefics3)
    row = load_rows(str(published), "extraction")[0]
    ex = Encoder(processor, "perception", 512)(row)
    ids, labels = ex["input_ids"], ex["labels"]
    target = labels != IGNORE
    first = int(target.nonzero()[0])
    assert not target[:first].any() and target[first:].all()  # one span, to the end
    assert torch.equal(labels[target], ids[target])
    tok = processor.tokenizer
    assert tok.decode(ids[target]) == row["extraction"] + "<end_of_utterance>\n"  # the reply and its end of turn
    assert (ids[:first] == processor.image_token_id).sum() == processor.image_seq_len  # image tokens are prompt
    assert tok.decode(ids[:first]).endswith(row["prompt"] + "<end_of_utterance>\nAssistant:")
    # cut to a max_length inside the reply: the prompt is kept whole, the reply cut
    short = Encoder(processor, "perception", first + 3)(row)
    assert len(short["input_ids"]) == first + 3 and (short["labels"] != IGNORE).sum() == 3
    assert Encoder(processor, "perception", first - 1)(row) is None  # no room for the prompt: skipped
    # the reasoner's text-only chats
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    rrow = load_rows(str(published), "reasoning")[0]
    rex = Encoder(tokenizer, "reasoner", 1024)(rrow)
    rtarget = rex["labels"] != IGNORE
    assert tokenizer.decode(rex["input_ids"][rtarget]) == rrow["reasoning"] + "<end_of_utterance>\n"
    assert rrow["question"] in tokenizer.decode(rex["input_ids"][~rtarget])


def test_the_schedule_warms_up_then_decays_to_min_lr():
    cfg = TrainConfig(lr=1.0, min_lr=0.1, warmup=4, steps=20)
    assert [round(lr_at(s, cfg), 3) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_at(20, cfg) == pytest.approx(0.1) and lr_at(12, cfg) == pytest.approx(0.55)


def test_loss_falls_when_overfitting_one_batch(published, tiny_idefics3, tmp_path):
    # 4 training rows, batch 4: every step sees the same batch
    rows = load_rows(str(published), "extraction").select(range(4))
    data = tmp_path / "four"
    rows.to_parquet(str(data / "extraction" / "train-x-00000-of-00001.parquet"))
    (data / "README.md").write_text("---\nconfigs:\n- config_name: extraction\n  data_files:\n  - split: train\n"
                                    "    path: extraction/*.parquet\n---\n")
    summary = train(run_config(tmp_path, tiny_idefics3, data, steps=30, lr=3e-3, min_lr=3e-3, warmup=1))
    losses = [h["loss"] for h in summary["history"]]
    assert losses[-1] < 0.3 * losses[0], losses


def test_every_trainable_parameter_changes(published, tiny_idefics3, tmp_path):
    before = load_file(str(tiny_idefics3 / "model.safetensors"))
    train(run_config(tmp_path, tiny_idefics3, published, steps=1))
    after = _weights(tmp_path / "run")
    unchanged = [n for n in before if torch.equal(before[n], after[n])]
    assert set(before) == set(after) and unchanged == []


def test_gradient_accumulation_8x1_equals_1x8(published, tiny_idefics3, tmp_path):
    train(run_config(tmp_path, tiny_idefics3, published, "a", steps=1, batch_size=8, grad_accum=1))
    train(run_config(tmp_path, tiny_idefics3, published, "b", steps=1, batch_size=1, grad_accum=8))
    a, b = _weights(tmp_path / "a"), _weights(tmp_path / "b")
    base = load_file(str(tiny_idefics3 / "model.safetensors"))
    for n in a:
        step_a, step_b = a[n] - base[n], b[n] - base[n]
        assert torch.allclose(step_a, step_b, rtol=1e-3, atol=1e-6), n


def test_two_steps_resume_two_steps_equals_four(published, tiny_idefics3, tmp_path):
    straight = train(run_config(tmp_path, tiny_idefics3, published, "straight", steps=4, eval_fraction=0.2, eval_every=2))
    half = train(run_config(tmp_path, tiny_idefics3, published, "resumed", steps=4, eval_fraction=0.2, eval_every=2, stop_after=2))
    assert half["stopped_at"] == 2 and (tmp_path / "resumed" / "checkpoints" / "step-00000002.pt").exists()
    assert not (tmp_path / "resumed" / "final").exists()
    resumed = train(run_config(tmp_path, tiny_idefics3, published, "resumed", steps=4, eval_fraction=0.2, eval_every=2))
    def timeless(summary):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in summary["history"]]

    assert timeless(resumed) == timeless(straight)  # same losses, lrs, grad norms, tokens, eval losses
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[n], b[n]) for n in a)
    assert straight["history"][1]["eval_loss"] is not None and straight["eval_examples"] > 0


def test_the_reasoner_trains_on_the_reasoning_config(published, tiny_llama, tmp_path):
    summary = train(run_config(tmp_path, tiny_llama, published, task="reasoner", steps=12, lr=3e-3, min_lr=3e-3, max_length=512))
    losses = [h["loss"] for h in summary["history"]]
    assert losses[-1] < losses[0]
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final") is not None
    assert (tmp_path / "run" / "final" / "train_config.json").exists()


def test_the_target_only_chunked_loss_equals_the_plain_one(published, tiny_idefics3):
    import torch.nn.functional as F
    from transformers import AutoModelForImageTextToText, AutoProcessor

    import train_min.train as tm
    from train_min.data import collate

    processor = AutoProcessor.from_pretrained(tiny_idefics3)
    model = AutoModelForImageTextToText.from_pretrained(tiny_idefics3)
    rows = load_rows(str(published), "extraction")
    batch = collate([Encoder(processor, "perception", 192)(rows[i]) for i in range(3)], processor.tokenizer.pad_token_id)
    ours, n = tm.loss_sum(model, dict(batch), "cpu", chunk=7)  # many chunks
    ours.backward()
    fused = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    logits = model(**inputs).logits
    plain = F.cross_entropy(logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten(), ignore_index=-100, reduction="sum")
    assert n == int((batch["labels"][:, 1:] != -100).sum()) and torch.allclose(ours, plain, rtol=1e-5)
    plain.backward()
    for name, p in model.named_parameters():  # the gradients taken in the forward pass are the same
        assert torch.allclose(fused[name], p.grad, rtol=1e-4, atol=1e-5), (name, (fused[name] - p.grad).abs().max())
    with torch.no_grad():  # evaluation: the loss alone
        assert torch.allclose(tm.loss_sum(model, dict(batch), "cpu", chunk=5)[0], plain.detach(), rtol=1e-5)


def test_lora_trains_adapters_only_and_saves_them(published, tiny_idefics3, tmp_path):
    pytest.importorskip("peft")
    summary = train(run_config(tmp_path, tiny_idefics3, published, steps=3, lora_r=4, lr=1e-2, min_lr=1e-2))
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in summary["history"])
    final = tmp_path / "run" / "final"
    adapters = load_file(str(final / "adapter_model.safetensors"))
    assert adapters and all("lora_" in name for name in adapters)
    assert any(float(w.abs().sum()) > 0 for name, w in adapters.items() if "lora_B" in name)  # B starts at zero
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    base = AutoModelForImageTextToText.from_pretrained(tiny_idefics3)
    before = {n: p.clone() for n, p in base.state_dict().items()}
    merged = PeftModel.from_pretrained(base, final).merge_and_unload()
    changed = [n for n, p in merged.state_dict().items() if not torch.equal(p, before[n])]
    assert changed and all(n.endswith("weight") for n in changed)  # adapters folded into linear weights


@pytest.mark.parametrize("accum", [1, 2])
def test_two_processes_with_gloo_train_as_one_at_the_same_global_batch(published, tiny_idefics3, tmp_path, accum):
    """torchrun, 2 CPU processes (gloo) of batch 2 x `accum` micro-batches = 1 process of
    batch 4 x `accum`: the same losses, token counts, gradient norms and weights."""
    import json
    import os
    import subprocess
    import sys

    one = train(run_config(tmp_path, tiny_idefics3, published, "one", steps=3, batch_size=4, grad_accum=accum))
    cfg = run_config(tmp_path, tiny_idefics3, published, "two", steps=3, batch_size=2, grad_accum=accum)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in vars(cfg).items() if not isinstance(v, bool)] + ["--no-progress"]
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "train_min.train",
                           *flags, "--report-to=none"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads((tmp_path / "two" / "final" / "train_config.json").read_text())
    assert two["processes"] == 2
    for a, b in zip(one["history"], two["history"], strict=True):
        assert a["tokens"] == b["tokens"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-4)
    a, b = _weights(tmp_path / "one"), _weights(tmp_path / "two")
    assert all(torch.allclose(a[n], b[n], rtol=1e-4, atol=1e-6) for n in a)


@pytest.mark.parametrize("task", ["perception", "reasoner"])
def test_a_packed_batch_has_the_loss_and_gradients_of_the_unpacked_one(published, tiny_idefics3, tiny_llama, task):
    """Packed rows: no token attends across an example (else the loss would change), the
    positions restart, each row's images are its examples' own."""
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    import train_min.train as tm
    from train_min.data import collate, pack

    if task == "perception":
        processor, model = AutoProcessor.from_pretrained(tiny_idefics3), AutoModelForImageTextToText.from_pretrained(tiny_idefics3)
        pad, rows = processor.tokenizer.pad_token_id, load_rows(str(published), "extraction")
    else:
        processor, model = AutoTokenizer.from_pretrained(tiny_llama), AutoModelForCausalLM.from_pretrained(tiny_llama)
        pad, rows = processor.pad_token_id, load_rows(str(published), "reasoning")
    examples = [Encoder(processor, task, 512)(rows[i]) for i in range(6)]
    longest = max(len(e["input_ids"]) for e in examples)
    packed = pack(examples, pad, 2 * longest)
    assert len(packed["input_ids"]) < len(examples)  # several examples share a row
    assert (packed["position_ids"] == 0).sum() >= len(examples)  # positions restart per example
    grads = []
    for batch in (collate(examples, pad), packed):
        model.zero_grad()
        loss, n = tm.loss_sum(model, dict(batch), "cpu", chunk=64)
        loss.backward()
        grads.append((loss.detach(), n, {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}))
    (a, na, ga), (b, nb, gb) = grads
    assert na == nb and torch.allclose(a, b, rtol=1e-5)
    assert ga.keys() == gb.keys()
    for k in ga:
        assert torch.allclose(ga[k], gb[k], rtol=1e-4, atol=1e-5), (k, (ga[k] - gb[k]).abs().max(), ga[k].abs().max())


def test_a_packed_run_follows_the_unpacked_runs_loss_curve(published, tiny_llama, tmp_path):
    """200 steps, the same examples per step: the curves agree to float noise."""
    runs = [train(run_config(tmp_path, tiny_llama, published, f"pack{p}", task="reasoner", steps=200, batch_size=8, max_length=512,
                       lr=3e-3, min_lr=3e-4, warmup=10, pack=p)) for p in (0, 1024)]
    a, b = ([h["loss"] for h in r["history"]] for r in runs)
    assert a[-1] < 0.5 * a[0]  # it learnt
    assert max(abs(x - y) / x for x, y in zip(a, b)) < 0.02
    assert [h["tokens"] for h in runs[0]["history"]] == [h["tokens"] for h in runs[1]["history"]]  # real tokens only


def test_every_flag_has_help_text(capsys):
    from dataclasses import fields

    from train_min.train import field_help, main

    helps = field_help()
    assert set(helps) == {f.name for f in fields(TrainConfig)} and all(helps.values())
    with pytest.raises(SystemExit):
        main(["--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps lines, also at hyphens
    for f in fields(TrainConfig):
        assert f"--{f.name.replace('_', '-')}" in text and "".join(helps[f.name].split()) in text


def test_reading_the_device_every_few_steps_records_every_step_the_same(published, tiny_llama, tmp_path):
    """--log-every N: no host sync per step, the same per-step history (losses, norms, eval)."""
    runs = [train(run_config(tmp_path, tiny_llama, published, f"l{n}", task="reasoner", steps=6, max_length=512, eval_fraction=0.2,
                       eval_every=3, log_every=n)) for n in (1, 4)]
    def timeless(summary):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in summary["history"]]

    assert timeless(runs[0]) == timeless(runs[1]) and [r["step"] for r in runs[1]["history"]] == [1, 2, 3, 4, 5, 6]
    assert "eval_loss" in runs[1]["history"][2] and all(r["seconds"] > 0 for r in runs[1]["history"])


def test_an_example_processes_its_images_once_and_labels_as_the_prompt_alone_would(published, tiny_idefics3, monkeypatch):
    """The prompt's length is read off the tokenized texts, not by processing the image a second
    time: the same ids and labels as encoding the prompt on its own, at half the image work."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_idefics3)
    rows = load_rows(str(published), "extraction")
    calls, process = [], processor.image_processor.__class__.__call__
    monkeypatch.setattr(processor.image_processor.__class__, "__call__", lambda self, *a, **k: calls.append(1) or process(self, *a, **k))
    fast = [Encoder(processor, "perception", 512)(rows[i]) for i in range(10)]
    assert len(calls) == 10
    monkeypatch.setattr(Encoder, "_prompt_length", lambda *a: None)  # the prompt encoded on its own, as the fallback does
    slow = [Encoder(processor, "perception", 512)(rows[i]) for i in range(10)]
    assert len(calls) == 30
    for a, b in zip(fast, slow):
        assert torch.equal(a["input_ids"], b["input_ids"]) and torch.equal(a["labels"], b["labels"]) and a["n_targets"] == b["n_targets"]
