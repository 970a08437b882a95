"""train_min: supervised fine-tuning of the Extract+Think models, readable top to bottom.

    python -m train_min.train --task perception --model PATH_OR_ID --data out/quickstart --out out/perception \
        [--steps 200 --batch-size 8 --grad-accum 1 --lr 1e-4 ...]

perception: an image-text-to-text model learns image + focus prompt -> extraction;
reasoner:   a causal LM learns extraction + question -> reasoning.

The loop: AdamW, linear warm-up then cosine decay to min_lr, gradient accumulation (the loss
of a step is summed over its micro-batches and divided by the step's target tokens, so 8
micro-batches of 1 equal 1 batch of 8), gradient clipping, bf16 autocast on CUDA, periodic
eval loss, checkpoints that resume exactly (model, optimizer, scheduler, RNG, data
position), a final save in Hugging Face format with the resolved config.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from train_min.data import CONFIG_OF, Encoder, collate, is_eval, load_rows
from train_min.report import CHOICES, Reporter


@dataclass
class TrainConfig:
    task: str = "perception"  # perception | reasoner
    model: str = ""  # a local path or a Hub id
    data: str = ""  # a publish folder (extract-think run) or a Hub dataset id
    out: str = "out/train"
    max_length: int = 1024
    batch_size: int = 8
    grad_accum: int = 1
    steps: int = 100
    lr: float = 1e-4
    min_lr: float = 1e-5
    warmup: int = 10
    weight_decay: float = 0.0
    clip: float = 1.0
    eval_fraction: float = 0.05  # rows held out by a hash of their id
    eval_every: int = 50  # steps; 0: only at the end
    save_every: int = 0  # steps between checkpoints; 0: only the final save
    stop_after: int = 0  # run this many steps, save a checkpoint and exit (time-limited jobs); 0: run to the end
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    lora_r: int = 0  # > 0: train LoRA adapters (peft) instead of all weights
    gradient_checkpointing: bool = False  # recompute activations in the backward pass: less memory, ~30% slower
    loss_chunk: int = 512  # target tokens per logits chunk: the loss never holds more logits than this many rows
    progress: bool = True
    report_to: str = "auto"  # auto | tensorboard | wandb | none (train_min/report.py)


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Linear warm-up to lr, then cosine down to min_lr at the last step."""
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    t = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(t, 1.0)))


def load_model(cfg: TrainConfig, device: str):
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer

    if cfg.task == "perception":
        processor = AutoProcessor.from_pretrained(cfg.model)
        model = AutoModelForImageTextToText.from_pretrained(cfg.model, dtype=torch.float32)
        pad = processor.tokenizer.pad_token_id
    else:
        processor = AutoTokenizer.from_pretrained(cfg.model)
        model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
        pad = processor.pad_token_id if processor.pad_token_id is not None else processor.eos_token_id
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora_r:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, target_modules="all-linear"))
    return processor, model.to(device), pad


class Batches:
    """Examples in a seeded random order, epoch after epoch; `state()` is the data position."""

    def __init__(self, examples: list[dict], batch_size: int, seed: int, pad: int, pin: bool = False):
        self.examples, self.batch_size, self.seed, self.pad, self.pin = examples, batch_size, seed, pad, pin
        self.epoch, self.pos = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> list[int]:
        return torch.randperm(len(self.examples), generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()

    def next(self) -> dict:
        if self.pos + self.batch_size > len(self._order):  # the remainder is dropped: batches stay full
            self.epoch, self.pos = self.epoch + 1, 0
            self._order = self._permutation()
        idx = self._order[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return collate([self.examples[i] for i in idx], self.pad, self.pin)

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def restore(self, state: dict) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]
        self._order = self._permutation()


class Prefetch:
    """The next step's micro-batches, collated (on CUDA into pinned memory) in a
    background thread while the GPU works on this step. One worker keeps the order; each
    step carries the data position after it, so a checkpoint never counts a prefetched step."""

    def __init__(self, batches: Batches, micro: int, device: str):
        from concurrent.futures import ThreadPoolExecutor

        self.batches, self.micro, self.device = batches, micro, device
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending = self.pool.submit(self._make)

    def _make(self) -> tuple[list[dict], dict]:
        return [self.batches.next() for _ in range(self.micro)], self.batches.state()

    def next(self) -> tuple[list[dict], dict]:
        got = self.pending.result()
        self.pending = self.pool.submit(self._make)
        return got

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


def _parts(model):
    """(the model body that returns hidden states, the output head); peft wrappers looked through."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return inner.base_model, inner.get_output_embeddings()


def loss_sum(model, batch: dict, device: str, chunk: int = 512) -> tuple[torch.Tensor, int]:
    """Summed next-token cross-entropy over the target tokens of a batch, and their count.

    Logits are computed only where there is a target (the assistant's reply), `chunk` rows at
    a time, and the gradients are taken there and then (`TargetCrossEntropy`): the (B, T,
    vocab) fp32 tensor a plain `model(...).logits` loss holds never exists, and no logits are
    recomputed in the backward pass."""
    labels = batch["labels"]
    flat = labels[:, 1:].reshape(-1)  # position t predicts token t+1
    where = torch.nonzero(flat != -100).squeeze(1)  # found on the host: no device sync mid-step
    targets = flat[where]
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    if device == "cuda":  # from pinned host memory the copies are asynchronous
        inputs = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
        where, targets = where.to(device, non_blocking=True), targets.to(device, non_blocking=True)
    body, head = _parts(model)
    if getattr(head, "bias", None) is not None:
        raise ValueError("train_min's loss supports output heads without a bias (as every Llama/Qwen/SmolVLM head)")
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device == "cuda"):
        hidden = body(**inputs, use_cache=False).last_hidden_state  # (B, T, H); no KV cache in training
        h = hidden[:, :-1].reshape(-1, hidden.shape[-1]).index_select(0, where)  # (N, H)
    return TargetCrossEntropy.apply(h, head.weight, targets, chunk), int(targets.numel())


class TargetCrossEntropy(torch.autograd.Function):
    """sum_i CE(h_i @ W^T, t_i), chunk by chunk, with the gradients for h and W computed in
    the forward pass while each chunk's softmax is at hand (a fused linear cross-entropy):
    one chunk of logits exists at a time, none is kept or recomputed. Matmuls run in h's
    dtype (bf16 under autocast), the softmax and the W gradient accumulate in fp32."""

    @staticmethod
    def forward(ctx, h, weight, targets, chunk):
        w = weight.to(h.dtype)
        grad_h = torch.empty_like(h) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros_like(weight, dtype=torch.float32) if ctx.needs_input_grad[1] else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for start in range(0, h.shape[0], chunk):
            hc, tc = h[start : start + chunk], targets[start : start + chunk]
            logits = (hc @ w.t()).float()
            lse = torch.logsumexp(logits, dim=-1)
            total += (lse - logits.gather(1, tc[:, None]).squeeze(1)).sum()
            if grad_h is None and grad_w is None:
                continue
            g = logits.sub_(lse[:, None]).exp_()  # softmax, in place of the logits
            g[torch.arange(len(tc), device=g.device), tc] -= 1.0  # d CE / d logits
            g = g.to(h.dtype)
            if grad_h is not None:
                torch.mm(g, w, out=grad_h[start : start + chunk])
            if grad_w is not None:
                grad_w.add_(g.t() @ hc)
        ctx.weight_dtype = weight.dtype
        ctx.save_for_backward(grad_h, grad_w)
        return total

    @staticmethod
    def backward(ctx, grad_out):
        grad_h, grad_w = ctx.saved_tensors
        return (None if grad_h is None else grad_h * grad_out.to(grad_h.dtype),
                None if grad_w is None else (grad_w * grad_out).to(ctx.weight_dtype), None, None)


@torch.no_grad()
def evaluate(model, examples: list[dict], cfg: TrainConfig, pad: int, device: str) -> float | None:
    if not examples:
        return None
    model.eval()
    total, n = 0.0, 0
    for i in range(0, len(examples), cfg.batch_size):
        loss, count = loss_sum(model, collate(examples[i : i + cfg.batch_size], pad), device, cfg.loss_chunk)
        total, n = total + float(loss), n + count
    model.train()
    return total / max(n, 1)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train(cfg: TrainConfig) -> dict:
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    random.seed(cfg.seed), np.random.seed(cfg.seed), torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    processor, model, pad = load_model(cfg, device)

    # Encode every row once: images are processed here, not every epoch.
    encode = Encoder(processor, cfg.task, cfg.max_length)
    train_set, eval_set, skipped = [], [], 0
    for row in tqdm(load_rows(cfg.data, CONFIG_OF[cfg.task]), desc="encoding", disable=not cfg.progress):
        example = encode(row)
        if example is None:
            skipped += 1
        else:
            if device == "cuda" and "pixel_values" in example:  # autocast computes in bf16 anyway:
                example["pixel_values"] = example["pixel_values"].to(torch.bfloat16)  # half the bytes kept and copied
            (eval_set if is_eval(row["id"], cfg.eval_fraction) else train_set).append(example)
    if len(train_set) < cfg.batch_size:
        raise ValueError(f"{len(train_set)} training examples, fewer than one batch of {cfg.batch_size}")

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay, fused=device == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, cfg) / cfg.lr)
    batches = Batches(train_set, cfg.batch_size, cfg.seed, pad, pin=device == "cuda")
    step, history = 0, []

    ckpt = out / "checkpoint.pt"
    if ckpt.exists():  # exact resume: weights, optimizer moments, schedule, RNG, data position
        state = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        batches.restore(state["data"])
        set_rng_state(state["rng"])
        step, history = state["step"], state["history"]

    data_state = batches.state()  # the data position after the last step taken

    def save_checkpoint():
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "data": data_state, "rng": rng_state(), "step": step, "history": history, "config": asdict(cfg)}, ckpt)

    model.train()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    first = step
    reporter = Reporter(cfg.report_to, out, asdict(cfg))
    prefetch = Prefetch(batches, cfg.grad_accum, device)
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.task}", disable=not cfg.progress)
    while step < cfg.steps:
        started = time.perf_counter()
        micro, data_state = prefetch.next()
        n_targets = sum(int((b["labels"][:, 1:] != -100).sum()) for b in micro)
        n_tokens = sum(int(b["attention_mask"].sum()) for b in micro)
        total = torch.zeros((), device=device)
        for b in micro:
            loss, _ = loss_sum(model, b, device, cfg.loss_chunk)
            (loss / max(n_targets, 1)).backward()  # one step's loss is a mean over all its target tokens
            total += loss.detach()  # stays on the device: no sync per micro-batch
        grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.clip))
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        if device == "cuda":
            torch.cuda.synchronize()
        record = {"step": step, "loss": float(total) / max(n_targets, 1), "lr": scheduler.get_last_lr()[0], "grad_norm": grad_norm,
                  "tokens": n_tokens, "seconds": time.perf_counter() - started}
        if (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps:
            record["eval_loss"] = evaluate(model, eval_set, cfg, pad, device)
        history.append(record)
        reporter.log(record)
        bar.update(1)
        last_eval = next((r["eval_loss"] for r in reversed(history) if "eval_loss" in r), None)
        bar.set_postfix(loss=f"{record['loss']:.3f}", **({"eval_loss": f"{last_eval:.3f}"} if last_eval is not None else {}))
        if cfg.save_every and step % cfg.save_every == 0 and step < cfg.steps:
            save_checkpoint()
        if cfg.stop_after and step - first >= cfg.stop_after and step < cfg.steps:
            save_checkpoint()
            bar.close(), prefetch.close(), reporter.close()
            return {"config": asdict(cfg), "device": device, "stopped_at": step, "history": history}
    bar.close(), prefetch.close(), reporter.close()

    final = out / "final"
    model.save_pretrained(final)
    processor.save_pretrained(final)
    summary = {"config": asdict(cfg), "device": device, "train_examples": len(train_set), "eval_examples": len(eval_set),
               "skipped_too_long": skipped, "history": history,
               "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None}
    (final / "train_config.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default)
        else:
            kind = {"int": int, "float": float}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
            ap.add_argument(flag, type=kind, default=f.default, **({"choices": CHOICES} if f.name == "report_to" else {}))
    summary = train(TrainConfig(**vars(ap.parse_args(argv))))
    last = summary["history"][-1]
    print(f"done: {last['step']} steps, loss {last['loss']:.4f}, eval loss {last.get('eval_loss')}, saved to {Path(summary['config']['out']) / 'final'}")


if __name__ == "__main__":
    main()
