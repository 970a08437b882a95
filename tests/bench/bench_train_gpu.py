"""train_min against TRL's SFTTrainer on one GPU: same model, same data, same batch and
sequence length, in one run; tokens per second, peak memory and model FLOPs utilisation.

Shapes (`--shape`), random weights built from configs:
- smolvlm: a SmolVLM-256M-shaped Idefics3 (SigLIP 512 px / patch 16 -> 64 image tokens; a
  30-layer, 576-wide Llama; vocabulary 49152);
- paper: the paper's student shape, a Qwen3-0.6B-shaped Llama (hidden 1024, 28 layers,
  vocabulary 151936) with a SigLIP-so400m/14-shaped tower at 384 px (729 image tokens);
- with `--task reasoner`: a Qwen3-1.7B-shaped causal LM (hidden 2048, 28 layers) on the
  reasoning config (`--shape paper`), or a SmolLM2-135M-shaped one (`--shape smolvlm`);
- tiny: a few-layer model of each kind, to check the bench itself on a CPU (`--device cpu`).

The data is a quickstart publish and its TRL export, made on the CPU machine:

    extract-think run quickstart --set sources.0.synthetic.num_records=512 --set output.dir=out/bench-gpu
    extract-think export out/bench-gpu --format trl --to out/bench-gpu-trl
    extract-think export out/bench-gpu --format trl --config reasoning --to out/bench-gpu-trl-reasoning
    python -m tests.bench.bench_train_gpu --data out/bench-gpu --trl-data out/bench-gpu-trl [--batch 16 --steps 40]
    python -m tests.bench.bench_train_gpu --shape paper --max-length 1100 ...            # the paper's shape
    python -m tests.bench.bench_train_gpu --shape paper --task reasoner --trl-data out/bench-gpu-trl-reasoning ...

Tokens are the real (non-padding) tokens of each batch (image tokens included), counted the
same way for both; the first `--warmup` steps are not timed. `--pack N`, `--compile` and
`--pad-multiple`, `--feed` and `--workers` are train_min's flags (compile is on by default with CUDA); `--profile N`
prints train_min's profile of N steps (the busiest kernels, and how busy the GPU was).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

H100_BF16_FLOPS = 989e12  # dense; the H200 has the same compute

VISION = {
    "tiny": dict(image_size=64, patch_size=16, scale_factor=2, vision={"hidden_size": 32, "intermediate_size": 64,
                                                                      "num_hidden_layers": 1, "num_attention_heads": 1}),
    "smolvlm": dict(image_size=512, patch_size=16, scale_factor=4, vision={"hidden_size": 768, "intermediate_size": 3072,
                                                                          "num_hidden_layers": 12, "num_attention_heads": 12}),
    "paper": dict(image_size=384, patch_size=14, scale_factor=1, vision={"hidden_size": 1152, "intermediate_size": 4304,
                                                                        "num_hidden_layers": 27, "num_attention_heads": 16}),
}
TEXT = {  # the perception model's language model
    "tiny": {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2},
    "smolvlm": {"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "max_position_embeddings": 2048},
    "paper": {"vocab_size": 151936, "hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 28,
              "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 4096},
}
REASONER = {
    "tiny": TEXT["tiny"],
    "smolvlm": {**TEXT["smolvlm"]},  # SmolLM2-135M's shape
    "paper": {"vocab_size": 151936, "hidden_size": 2048, "intermediate_size": 6144, "num_hidden_layers": 28,  # 1.72B, as Qwen3-1.7B
              "num_attention_heads": 16, "num_key_value_heads": 8, "head_dim": 128, "max_position_embeddings": 4096,
              "tie_word_embeddings": True},
}


def build_model(path: Path, shape: str = "smolvlm", task: str = "perception") -> Path:
    from tests.tiny_models import tiny_tokenizer
    from train_min.experiment.scratch import IDEFICS3_SPECIALS, LM_SPECIALS, build_idefics3, build_llama

    if task == "reasoner":
        return build_llama(path, tiny_tokenizer(LM_SPECIALS, vocab_size=2000), text={"max_position_embeddings": 2048, **REASONER[shape]})
    v = VISION[shape]
    return build_idefics3(path, tiny_tokenizer(IDEFICS3_SPECIALS, vocab_size=2000), image_size=v["image_size"], patch_size=v["patch_size"],
                          scale_factor=v["scale_factor"], vision=v["vision"], text={"max_position_embeddings": 2048, **TEXT[shape]})


def step_flops(model: Path, task: str, batch: int, tokens: float, targets: float) -> float:
    """The training FLOPs one step needs (forward and backward: 3x the forward's 2 per
    multiply-add), counted part by part from the model's config: the vision tower on every
    patch of each example's one image (no tiling), the connector on the image tokens, the
    language model's layers on every real token, causal attention at the batch's mean length
    (T/2 keys a token on average), and the output layer on the target tokens only (all a
    step needs to compute). 6 x parameters x tokens, the usual estimate, is wrong for a VLM:
    its vision tower runs on (image_size/patch)^2 patches, not on the image tokens it emits."""
    cfg = json.loads((model / "config.json").read_text())
    text = cfg.get("text_config", cfg)
    h, layers, inter = text["hidden_size"], text["num_hidden_layers"], text["intermediate_size"]
    q = text["num_attention_heads"] * text.get("head_dim", h // text["num_attention_heads"])
    kv = text.get("num_key_value_heads", text["num_attention_heads"]) * text.get("head_dim", h // text["num_attention_heads"])
    body = layers * (2 * h * q + 2 * h * kv + 3 * h * inter)  # q, o, k, v, gate, up, down
    mean = tokens / batch
    flops = 6 * body * tokens + 6 * layers * q * mean * tokens + 6 * text["vocab_size"] * h * targets
    if task == "perception":
        v = cfg["vision_config"]
        hv, lv, patches = v["hidden_size"], v["num_hidden_layers"], (v["image_size"] // v["patch_size"]) ** 2
        per_patch = lv * (4 * hv * hv + 2 * hv * v["intermediate_size"]) + 3 * v["patch_size"] ** 2 * hv
        flops += batch * patches * (6 * per_patch + 12 * lv * hv * patches)  # bidirectional: every patch sees all
        flops += batch * 6 * hv * h * patches  # the connector: scale^2 patches in, one token out
    return flops


def params(path: Path) -> int:
    from train_min.experiment.jobs import params as counted

    return counted(path)


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def run_train_min(model: Path, data: str, batch: int, steps: int, max_length: int, out: Path, ckpt: bool, chunk: int,
                  task: str = "perception", device: str = "cuda", pack: int = 0, compile: str = "auto", pad_multiple: int = 0,
                  profile: int = 0, attention: str = "sdpa", grad_accum: int = 1,
                  eval_every: int = 0, feed: str = "stream", workers: int = -1) -> dict:
    from train_min.train import TrainConfig, train

    s = train(TrainConfig(task=task, model=str(model), data=data, out=str(out), batch_size=batch // grad_accum, grad_accum=grad_accum, steps=steps,
                          max_length=max_length, lr=1e-4, warmup=5, eval_fraction=0.05 if eval_every else 0.0,
                          eval_every=eval_every, progress=True, device=device,
                          gradient_checkpointing=ckpt, loss_chunk=chunk, pack=pack, compile=compile, pad_multiple=pad_multiple,
                          report_to="none", profile=profile, attention=attention, feed=feed, workers=workers,
                          save_every=0, save_minutes=0, index_cache=str(out / "index")))
    if profile:  # the profiled steps' table, in this run's output
        print((out / "profile" / "top.txt").read_text())
    return {"history": [(h["tokens"], h["seconds"]) for h in s["history"]], "targets": [h["targets"] for h in s["history"]],
            "peak": s["peak_memory_gib"] or 0.0,
            "losses": [h["loss"] for h in s["history"]], "eval_losses": [h["eval_loss"] for h in s["history"] if "eval_loss" in h]}


def run_trl(model: Path, data: str, batch: int, steps: int, max_length: int, out: Path, ckpt: bool, chunk: int,
            workers: int = 2, task: str = "perception", device: str = "cuda") -> dict:
    import datasets
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    if task == "reasoner":
        processor, net = AutoTokenizer.from_pretrained(model), AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    else:
        processor = AutoProcessor.from_pretrained(model)
        net = AutoModelForImageTextToText.from_pretrained(model, dtype=torch.float32)
    ds = datasets.load_dataset(data, split="train")
    history: list[tuple[int, float]] = []

    class Clock(TrainerCallback):
        """Step end to step end: everything the training loop does per step (fetching and
        copying the batch, logging) counts, as it does in train_min's per-step seconds."""

        def on_train_begin(self, args, state, control, **kw):
            _sync(device)
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            _sync(device)
            now = time.perf_counter()
            history.append((None, now - self.t))
            self.t = now

    cfg = SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-4,
                    warmup_steps=5, lr_scheduler_type="cosine", bf16=device == "cuda", max_length=max_length,
                    optim="adamw_torch_fused" if device == "cuda" else "adamw_torch", logging_steps=1, report_to=[],
                    save_strategy="no", dataloader_num_workers=workers, seed=0, use_cpu=device == "cpu",
                    gradient_checkpointing=ckpt)  # TRL's default is True; set the same on both sides
    trainer = SFTTrainer(model=net, args=cfg, train_dataset=ds, processing_class=processor, callbacks=[Clock()])
    # the tokens of each step, counted as for train_min: the non-padding tokens of the batch
    tokens, targets, step = [], [], trainer.training_step

    def counting_step(model, inputs, *a, **kw):
        tokens.append(int(inputs["attention_mask"].sum()))
        targets.append(int((inputs["labels"][:, 1:] != -100).sum()))
        return step(model, inputs, *a, **kw)

    trainer.training_step = counting_step
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    trainer.train()
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    return {"history": [(t, s) for t, (_, s) in zip(tokens, history)], "targets": targets, "peak": peak}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--trl-data", required=True)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--max-length", type=int, default=320)
    ap.add_argument("--only", choices=["train_min", "trl"], default=None)
    ap.add_argument("--gradient-checkpointing", action="store_true", help="on both sides (TRL's default)")
    ap.add_argument("--loss-chunk", type=int, default=512, help="train_min's target tokens per logits chunk")
    ap.add_argument("--trl-workers", type=int, default=2, help="TRL's dataloader worker processes (it processes images per batch)")
    ap.add_argument("--shape", choices=list(VISION), default="smolvlm")
    ap.add_argument("--task", choices=["perception", "reasoner"], default="perception")
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda", help="cpu: to check the bench itself (--shape tiny)")
    ap.add_argument("--pack", type=int, default=0, help="train_min: pack each batch into rows of this many tokens")
    ap.add_argument("--compile", choices=["auto", "on", "off", "reduce-overhead", "max-autotune"], default="auto",
                    help="train_min: compile the towers (auto: with CUDA graphs on CUDA; on: without graphs)")
    ap.add_argument("--pad-multiple", type=int, default=0, help="train_min: pad lengths to a multiple (0: 64 when compiling)")
    ap.add_argument("--attention", choices=["sdpa", "varlen", "masked"], default="sdpa",
                    help="train_min: varlen, packed rows through FlashAttention; masked, transformers' own dense masks")
    ap.add_argument("--grad-accum", type=int, default=1, help="train_min: the batch as this many micro-batches (same examples per step)")
    ap.add_argument("--eval-every", type=int, default=0, help="train_min: hold out 5%% and evaluate every this many steps (its time counts)")
    ap.add_argument("--profile", type=int, default=0, help="train_min: profile this many steps after the first 10; prints the top kernels")
    ap.add_argument("--feed", choices=["stream", "memory"], default="stream",
                    help="train_min: examples encoded in loader workers as needed (stream) or all before training (memory)")
    ap.add_argument("--workers", type=int, default=-1, help="train_min: loader workers (-1: auto)")
    args = ap.parse_args()

    import torch

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    model = build_model(work / "model", args.shape, args.task)
    n = params(model)
    rows = []
    for name, fn, data in (("train_min", run_train_min, args.data), ("TRL SFTTrainer", run_trl, args.trl_data)):
        if args.only and not name.lower().startswith(args.only.lower()[:3]):
            continue
        if args.device == "cuda":
            torch.cuda.empty_cache()
        extra = {"workers": args.trl_workers} if fn is run_trl else {"pack": args.pack, "compile": args.compile,
                                                                     "pad_multiple": args.pad_multiple, "profile": args.profile,
                                                                     "attention": args.attention, "grad_accum": args.grad_accum,
                                                                     "eval_every": args.eval_every, "feed": args.feed,
                                                                     "workers": args.workers}
        r = fn(model, data, args.batch, args.steps, args.max_length, work / name.replace(" ", "_"), args.gradient_checkpointing,
               args.loss_chunk, task=args.task, device=args.device, **extra)
        timed = r["history"][args.warmup:]
        tps = sum(t for t, _ in timed) / sum(s for _, s in timed)
        seconds = sum(s for _, s in timed) / len(timed)
        tokens, targets = sum(t for t, _ in timed) / len(timed), sum(r["targets"][args.warmup:]) / len(timed)
        rows.append({"trainer": name, "batch": args.batch, "checkpointing": args.gradient_checkpointing, "tokens_per_s": tps, "peak_gib": r["peak"],
                     "mfu": step_flops(model, args.task, args.batch, tokens, targets) / seconds / H100_BF16_FLOPS,
                     "mfu_6n": 6 * n * tps / H100_BF16_FLOPS, "tokens_per_step": tokens, "targets_per_step": targets,
                     "seconds_per_step": seconds, "losses": r.get("losses"), "eval_losses": r.get("eval_losses"), "parameters": n,
                     "pack": args.pack if fn is run_train_min else 0})
    where = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    print(f"\n{args.shape} {args.task}: {n / 1e6:.0f}M parameters; {where}; max_length {args.max_length}; pack {args.pack}; "
          f"compile {args.compile}; {args.steps} steps, first {args.warmup} untimed\n")
    print("| trainer | batch | checkpointing | tokens/step | tokens/s | peak GiB | MFU | 6N MFU |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['trainer']} | {r['batch']} | {'on' if r['checkpointing'] else 'off'} | {r['tokens_per_step']:.0f} | "
              f"{r['tokens_per_s'] / 1e3:.1f}k | {r['peak_gib']:.2f} | {r['mfu']:.1%} | {r['mfu_6n']:.1%} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
