"""The GPU bench's model FLOPs count (tests/bench/bench_train_gpu.py), checked on the CPU
against the weight matrices of the models it builds."""

import pytest
import torch


@pytest.mark.parametrize("task", ["perception", "reasoner"])
def test_the_bench_counts_the_flops_of_every_weight_matrix(task, tmp_path):
    """The GPU bench's MFU: its per-part count covers exactly the model's weight matrices
    (the vision tower once per patch, the language model once per token), so with one-token
    examples and no targets only the attention terms are left over."""
    import json

    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    from tests.bench.bench_train_gpu import build_model, step_flops

    path = build_model(tmp_path / "m", "tiny", task)
    with torch.device("meta"):
        net = (AutoModelForCausalLM if task == "reasoner" else AutoModelForImageTextToText).from_config(AutoConfig.from_pretrained(path))
    mats = {n: p.numel() for n, p in net.named_parameters()
            if p.dim() >= 2 and not any(k in n for k in ("position_embedding", "embed_tokens", "lm_head"))}  # lookups
    vision = sum(v for n, v in mats.items() if "vision" in n)  # the patch embedding too: a matrix on every patch
    connector = sum(v for n, v in mats.items() if "connector" in n)  # on every image token
    text = sum(mats.values()) - vision - connector
    cfg = json.loads((path / "config.json").read_text())
    t, layers = cfg.get("text_config", cfg), cfg.get("text_config", cfg)["num_hidden_layers"]
    q = t["num_attention_heads"] * t.get("head_dim", t["hidden_size"] // t["num_attention_heads"])
    expected = 6 * text + 6 * layers * q  # one token: attends to itself
    if task == "perception":
        v = cfg["vision_config"]
        patches = (v["image_size"] // v["patch_size"]) ** 2
        expected += 6 * vision * patches + 12 * v["num_hidden_layers"] * v["hidden_size"] * patches**2
        expected += 6 * connector * patches // cfg["scale_factor"] ** 2
    assert step_flops(path, task, batch=1, tokens=1, targets=0) == expected
    assert step_flops(path, task, 1, 1, 5) - expected == 6 * 5 * t["vocab_size"] * t["hidden_size"]  # the output layer, per target
