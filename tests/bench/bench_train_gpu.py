"""train_min against TRL's SFTTrainer on one GPU: same model, same data, same batch and
sequence length, in one run; tokens per second, peak memory and model FLOPs utilisation.

The model is a SmolVLM-256M-shaped Idefics3 built from a config with random weights (SigLIP
512 px / patch 16 -> 64 image tokens; a 30-layer, 576-wide Llama; vocabulary 49152). The
data is a quickstart publish at 512 px and its TRL export, made on the CPU machine:

    extract-think run quickstart --set sources.0.synthetic.num_records=512 --set output.dir=out/bench-gpu
    extract-think export out/bench-gpu --format trl --to out/bench-gpu-trl
    python -m tests.bench.bench_train_gpu --data out/bench-gpu --trl-data out/bench-gpu-trl [--batch 16 --steps 40]

Tokens are the non-padding tokens of each batch (image tokens included), counted the same
way for both; the first `--warmup` steps are not timed.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

H100_BF16_FLOPS = 989e12  # dense


def build_model(path: Path) -> Path:
    from tests.tiny_models import tiny_tokenizer
    from train_min.scratch import IDEFICS3_SPECIALS, build_idefics3

    return build_idefics3(
        path, tiny_tokenizer(IDEFICS3_SPECIALS, vocab_size=2000), image_size=512, patch_size=16, scale_factor=4,
        vision={"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12},
        text={"vocab_size": 49152, "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
              "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "max_position_embeddings": 2048})


def params(path: Path) -> int:
    from transformers import AutoModelForImageTextToText

    return sum(p.numel() for p in AutoModelForImageTextToText.from_pretrained(path).parameters())


def run_train_min(model: Path, data: str, batch: int, steps: int, max_length: int, out: Path, ckpt: bool, chunk: int) -> dict:
    from train_min.train import TrainConfig, train

    s = train(TrainConfig(task="perception", model=str(model), data=data, out=str(out), batch_size=batch, steps=steps,
                          max_length=max_length, lr=1e-4, warmup=5, eval_fraction=0.0, eval_every=0, progress=False, device="cuda",
                          gradient_checkpointing=ckpt, loss_chunk=chunk))
    return {"history": [(h["tokens"], h["seconds"]) for h in s["history"]], "peak": s["peak_memory_gib"]}


def run_trl(model: Path, data: str, batch: int, steps: int, max_length: int, out: Path, ckpt: bool, chunk: int,
            workers: int = 2) -> dict:
    import datasets
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    processor = AutoProcessor.from_pretrained(model)
    net = AutoModelForImageTextToText.from_pretrained(model, dtype=torch.float32)
    ds = datasets.load_dataset(data, split="train")
    history: list[tuple[int, float]] = []

    class Clock(TrainerCallback):
        """Step end to step end: everything the training loop does per step (fetching and
        copying the batch, logging) counts, as it does in train_min's per-step seconds."""

        def on_train_begin(self, args, state, control, **kw):
            torch.cuda.synchronize()
            self.t = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            torch.cuda.synchronize()
            now = time.perf_counter()
            history.append((None, now - self.t))
            self.t = now

    cfg = SFTConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=batch, learning_rate=1e-4,
                    warmup_steps=5, lr_scheduler_type="cosine", bf16=True, max_length=max_length, optim="adamw_torch_fused",
                    logging_steps=1, report_to=[], save_strategy="no", dataloader_num_workers=workers, seed=0,
                    gradient_checkpointing=ckpt)  # TRL's default is True; set the same on both sides
    trainer = SFTTrainer(model=net, args=cfg, train_dataset=ds, processing_class=processor, callbacks=[Clock()])
    # the tokens of each step, counted as for train_min: the non-padding tokens of the batch
    tokens, step = [], trainer.training_step

    def counting_step(model, inputs, *a, **kw):
        tokens.append(int(inputs["attention_mask"].sum()))
        return step(model, inputs, *a, **kw)

    trainer.training_step = counting_step
    torch.cuda.reset_peak_memory_stats()
    trainer.train()
    peak = torch.cuda.max_memory_allocated() / 2**30
    return {"history": [(t, s) for t, (_, s) in zip(tokens, history)], "peak": peak}


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
    args = ap.parse_args()

    import torch

    work = Path(tempfile.mkdtemp(prefix="bench-train-"))
    model = build_model(work / "model")
    n = params(model)
    rows = []
    for name, fn, data in (("train_min", run_train_min, args.data), ("TRL SFTTrainer", run_trl, args.trl_data)):
        if args.only and not name.lower().startswith(args.only.lower()[:3]):
            continue
        torch.cuda.empty_cache()
        extra = {"workers": args.trl_workers} if fn is run_trl else {}
        r = fn(model, data, args.batch, args.steps, args.max_length, work / name.replace(" ", "_"), args.gradient_checkpointing,
               args.loss_chunk, **extra)
        timed = r["history"][args.warmup:]
        tps = sum(t for t, _ in timed) / sum(s for _, s in timed)
        rows.append({"trainer": name, "batch": args.batch, "checkpointing": args.gradient_checkpointing, "tokens_per_s": tps, "peak_gib": r["peak"],
                     "mfu": 6 * n * tps / H100_BF16_FLOPS, "tokens_per_step": sum(t for t, _ in timed) / len(timed)})
    print(f"\nmodel: {n / 1e6:.0f}M parameters; {torch.cuda.get_device_name()}; max_length {args.max_length}; "
          f"{args.steps} steps, first {args.warmup} untimed\n")
    print("| trainer | batch | checkpointing | tokens/step | tokens/s | peak GiB | MFU |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['trainer']} | {r['batch']} | {'on' if r['checkpointing'] else 'off'} | {r['tokens_per_step']:.0f} | {r['tokens_per_s'] / 1e3:.1f}k | {r['peak_gib']:.2f} | {r['mfu']:.1%} |")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
