"""The offline demo end to end at toy sizes: data, tokenizers and models from scratch,
both trainings, the evaluation table; a rerun skips what is finished."""

import json

import train_min.experiment.demo as demo
from train_min.experiment.demo import load_demo, run_demo

SMALL = [
    "data.overrides=[sources.0.synthetic.num_records=24, sources.0.synthetic.image_size=64, cache.dir=null]",
    "vocab_size=400",
    "perception_model.image_size=32", "perception_model.patch_size=8", "perception_model.scale_factor=2",
    "perception_model.vision={hidden_size: 16, intermediate_size: 32, num_hidden_layers: 1, num_attention_heads: 1}",
    "perception_model.text={hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, head_dim: 16}",
    "reasoner_model={hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 2, head_dim: 16}",
    "perception.steps=6", "perception.batch_size=4", "perception.eval_every=0",
    "reasoner.steps=3", "reasoner.batch_size=4", "reasoner.eval_every=0",
    "eval.heldout.0.synthetic.num_records=4", "eval.heldout.0.synthetic.image_size=64",
    "eval.extraction_tokens=8", "eval.thinking_budget=6", "eval.answer_tokens=2", "eval.direct_tokens=2",
    "progress=false",
]


def test_the_demo_runs_end_to_end_and_a_rerun_skips_finished_steps(tmp_path, monkeypatch, capsys):
    from importlib import resources

    recipe = str(resources.files("recipes") / "train" / "tiny-vlm.yaml")
    cfg = load_demo(recipe, SMALL + [f"out={tmp_path / 'demo'}"])
    report = run_demo(cfg)
    out = tmp_path / "demo"
    for task, steps in (("perception", 6), ("reasoner", 3)):
        summary = json.loads((out / task / "final" / "train_config.json").read_text())
        assert summary["history"][-1]["step"] == steps and summary["config"]["model"] == str(out / "init" / task)
    # the perception model's first 4 steps were timed here and the rest estimated from them, then resumed
    said = capsys.readouterr().out
    assert "perception: " in said and " s a step on this machine: about " in said and "for the other 2 steps" in said
    tok = json.loads((out / "init" / "perception" / "tokenizer_config.json").read_text())
    assert "<image>" in json.dumps(tok)  # the tokenizer trained here, with the image tokens
    results = json.loads((out / "eval" / "results.json").read_text())
    assert results["config"]["perception"]["model"] == str(out / "perception" / "final")
    assert report["items"] == results["items"] > 0 and report["table"] == results["table"]
    assert [line.split(" |")[0] for line in report["table"].splitlines()[2:]] == ["| extract_think", "| caption_think", "| direct"]

    def no_training(*a, **k):
        raise AssertionError("a finished model was trained again")

    monkeypatch.setattr(demo, "train", no_training)
    demo.main([recipe, *SMALL, f"out={out}"])
    printed = capsys.readouterr().out
    assert "held-out scenes" in printed and report["table"] in printed
