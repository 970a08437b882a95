"""train_min: supervised fine-tuning of the Extract+Think models, readable top to bottom.

    python -m train_min.train --task perception --model PATH_OR_ID --data out/quickstart --out out/perception \
        [--steps 200 --batch-size 8 --grad-accum 1 --lr 1e-4 ...]

perception: an image-text-to-text model learns image + focus prompt -> extraction;
reasoner:   a causal LM learns extraction + question -> reasoning.

The loop: AdamW, linear warm-up then cosine decay to min_lr, gradient accumulation (the loss
of a step is summed over its micro-batches and divided by the step's target tokens, so 8
micro-batches of 1 equal 1 batch of 8), gradient clipping, bf16 autocast on CUDA, periodic
eval loss, checkpoints by default that resume exactly (model, optimizer, scheduler, RNG, data
position), a final save in Hugging Face format with the resolved config and a model card.
The data is streamed (train_min/feed.py): host memory does not grow with the dataset.

Data parallel on several GPUs (or CPU processes, gloo), the same command under torchrun:

    torchrun --nproc_per_node 8 -m train_min.train ... --batch-size 8   # trains as 1 process of batch 64
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import random
import resource
import warnings
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from train_min import vision
from train_min.attention import set_attention
from train_min.card import write_model_card
from train_min.checkpoints import Checkpoints
from train_min.config import ATTENTION, COMPILE, FEEDS, TrainConfig, compile_mode, field_help
from train_min.data import CONFIG_OF, PROMPT_FILES, TEMPLATE_OF, Encoder, dataset_template, load_rows, padded_length
from train_min.feed import Encoded, HeldEval, InMemory, Order, Stream, eval_batches
from train_min.index import build_index, default_cache
from train_min.loss import TargetCrossEntropy, TargetLoss, loss_sum, parts  # noqa: F401 - TargetCrossEntropy: train_min's API
from train_min.metrics import CHOICES, Reporter, StepLog
from train_min.runtime import StepProfiler, barrier, compile_towers, distributed, rng_state, set_rng_state, shapes_warning


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


@torch.no_grad()
def eval_loss(model, batches, cfg: TrainConfig, device: str) -> float | None:
    """The mean loss per target token over the evaluation batches (an iterable gone through
    once per call; None: none)."""
    if batches is None:
        return None
    model.eval()
    total, n = 0.0, 0
    for batch in batches:
        loss, count = loss_sum(model, batch, device, cfg.loss_chunk)
        total, n = total + float(loss), n + count
    model.train()
    return total / max(n, 1)


def data_workers(setting: int, world: int) -> int:
    """Worker processes per training process: `setting`, or (-1) the machine's CPUs shared by
    the training processes, one left to each of them, at most 8."""
    if setting >= 0:
        return setting
    return max(1, min(8, (os.cpu_count() or 2) // world - 1))


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def row_index(cfg: TrainConfig, rows, encode, workers: int, rank: int, world: int):
    """What every row's example will be (length, targets), from an index: no example is held.
    Under DDP process 0 builds it (and caches it); the others read the cache, not encode every row again."""
    cache = None if not cfg.index_cache else default_cache() if cfg.index_cache == "auto" else Path(cfg.index_cache)
    index = build_index(rows, encode, cfg.eval_fraction, workers, cache, cfg.progress) if rank == 0 or not cache else None
    barrier(world)
    return index or build_index(rows, encode, cfg.eval_fraction, workers, cache)


def feeds(cfg: TrainConfig, dataset, index, order: Order, pad: int, device: str, workers: int, shape: dict, multiple: int):
    """(the training feed, the evaluation batches or None): streamed from worker processes, or
    (--feed memory) from every example encoded first and held."""
    train_rows, eval_rows = index.train_rows(), index.eval_rows()
    if cfg.feed == "memory":
        examples = {int(i): dataset[i] for i in tqdm(np.concatenate([train_rows, eval_rows]), desc="encoding", disable=not cfg.progress)}
        return (InMemory(examples, order, index, cfg.grad_accum, pad, device == "cuda", **shape),
                HeldEval(examples, eval_rows, cfg.batch_size, pad, multiple) if len(eval_rows) else None)
    return (Stream(dataset, order, index, cfg.grad_accum, pad, device == "cuda", workers, **shape),
            eval_batches(dataset, eval_rows, cfg.batch_size, pad, multiple, min(workers, 2)) if len(eval_rows) else None)


def save_checkpoint(checkpoints: Checkpoints, state: dict, rank: int, world: int) -> None:
    """Process 0 writes the checkpoint; every process marks the time and waits for it."""
    if rank == 0:
        checkpoints.save(state, state["step"])
    checkpoints.saved()
    barrier(world)


def save_final(cfg: TrainConfig, model, processor, summary: dict) -> None:
    """The final folder: the model and processor in Hugging Face format, the resolved config
    and history, the prompt template the model was trained on, and the model card."""
    final = Path(cfg.out) / "final"
    model.save_pretrained(final)
    processor.save_pretrained(final)
    (final / "train_config.json").write_text(json.dumps(summary, indent=2))
    template = dataset_template(cfg.data, TEMPLATE_OF[cfg.task])
    if template is not None:  # the prompt the model was trained on, for its evaluation to render
        (final / PROMPT_FILES[TEMPLATE_OF[cfg.task]]).parent.mkdir(parents=True, exist_ok=True)
        (final / PROMPT_FILES[TEMPLATE_OF[cfg.task]]).write_text(template)
    write_model_card(final, summary)


def train(cfg: TrainConfig) -> dict:
    """Train; under torchrun, data parallel: every process takes its slice of each global
    batch (batch_size x grad_accum x processes examples) and process 0 logs and saves."""
    cfg.check()
    device = ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    rank, world = distributed(device)
    seed_everything(cfg.seed)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.attention == "varlen" and (not cfg.pack or device != "cuda"):
        raise ValueError("--attention varlen runs packed batches (--pack) on CUDA: its kernel is FlashAttention's")
    processor, model, pad = load_model(cfg, device)

    encode, workers = Encoder(processor, cfg.task, cfg.max_length), data_workers(cfg.workers, world)
    rows = load_rows(cfg.data, CONFIG_OF[cfg.task])
    index = row_index(cfg, rows, encode, workers, rank, world)
    train_rows, eval_rows = index.train_rows(), index.eval_rows()
    if len(train_rows) < cfg.batch_size * world:
        raise ValueError(f"{len(train_rows)} training examples, fewer than one batch of {cfg.batch_size * world}")
    # autocast computes in bf16 anyway: half the pixel bytes moved and pinned
    dataset = Encoded(rows, encode, torch.bfloat16 if device == "cuda" else None)

    full = bool(index.full_pixels[np.concatenate([train_rows, eval_rows])].all())
    set_attention(model, cfg.attention, packed=cfg.pack > 0, pixel_masks_full=full)  # before compiling
    vision.install(parts(model)[0])  # Idefics3's vision embeddings without a device sync: the compiled tower is one graph
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.95), weight_decay=cfg.weight_decay, fused=device == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_at(s, cfg) / cfg.lr)
    mode = compile_mode(cfg.compile, device, world)
    compiling = mode is not None
    multiple = cfg.pad_multiple or (64 if compiling else 1)
    if compiling:
        compile_towers(model, mode, dynamic=None if cfg.pack else False)  # packed: the row count goes symbolic
        if not cfg.pack and (why := shapes_warning(cfg.max_length, multiple)):
            warnings.warn(why, stacklevel=2)
    order = Order(train_rows, cfg.batch_size, cfg.seed, rank, world)
    step_loss = TargetLoss(model, device, cfg.loss_chunk)
    if world > 1:  # gradients averaged over the processes in the backward pass
        step_loss = torch.nn.parallel.DistributedDataParallel(step_loss)
    step, history = 0, []

    checkpoints = Checkpoints(out, cfg.save_every, cfg.save_minutes, cfg.keep_checkpoints)
    state = checkpoints.latest(device)
    if state is not None:  # exact resume: weights, optimizer moments, schedule, RNG, data position
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        order.restore(state["data"])
        set_rng_state(state["rng"])
        step, history = state["step"], state["history"]

    data_state = order.state()  # the data position after the last step taken
    # packed and compiled: every row as wide as the pack, so only the row count varies and the recompiles stay few
    shape = dict(pack_length=cfg.pack, multiple=padded_length(cfg.pack, multiple) if cfg.pack and compiling else multiple,
                 varlen=cfg.attention == "varlen")
    feed, held_out = feeds(cfg, dataset, index, order, pad, device, workers, shape, multiple)

    model.train()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    first = step
    reporter = Reporter(cfg.report_to if rank == 0 else "none", out, asdict(cfg))
    profiler = StepProfiler(cfg.profile if rank == 0 else 0, out, device, cfg.steps - step)
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.task}", disable=not cfg.progress or rank > 0)
    log = StepLog(history, reporter, bar)  # steps whose loss and gradient norm are still on the device
    while step < cfg.steps:
        torch.compiler.cudagraph_mark_step_begin()  # reduce-overhead: the last step's graph outputs may be overwritten
        micro, data_state = feed.next()
        n_targets, n_tokens = sum(t for _, t, _ in micro), sum(n for _, _, n in micro)  # of the global batch
        total = torch.zeros((), device=device)
        for i, (b, _, _) in enumerate(micro):
            # gradients are reduced across processes once a step, on its last micro-batch
            with step_loss.no_sync() if world > 1 and i < len(micro) - 1 else contextlib.nullcontext():
                loss, _ = step_loss(b)
                # one step's loss is a mean over all its target tokens (x world: the processes' mean is their sum)
                (loss * world / max(n_targets, 1)).backward()
            total += loss.detach()  # stays on the device: no sync per micro-batch
        if world > 1:
            torch.distributed.all_reduce(total)
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.clip)  # a device tensor: no sync
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        log.add(step, total, grad_norm, n_targets, n_tokens, scheduler.get_last_lr()[0])
        profiler.step()
        evaluating = (cfg.eval_every and step % cfg.eval_every == 0) or step == cfg.steps
        stopping = cfg.stop_after and step - first >= cfg.stop_after and step < cfg.steps
        reading = evaluating or stopping or len(log) >= max(1, cfg.log_every)  # the loop reads the device: a sync anyway
        saving = step < cfg.steps and checkpoints.due(step, reading, world, device)
        if reading or saving:
            log.flush(eval_loss(model, held_out, cfg, device) if evaluating else None)
        if saving or stopping:
            state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                     "data": data_state, "rng": rng_state(), "step": step, "history": history, "config": asdict(cfg)}
            save_checkpoint(checkpoints, state, rank, world)
        if stopping:
            break
    for part in (bar, feed, reporter, profiler):
        part.close()
    if step < cfg.steps:
        return {"config": asdict(cfg), "device": device, "stopped_at": step, "history": history}

    summary = {"config": asdict(cfg), "device": device, "processes": world, "train_examples": len(train_rows),
               "eval_examples": len(eval_rows), "skipped_too_long": index.skipped, "history": history,
               "peak_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None,
               "peak_host_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}
    if rank == 0:
        save_final(cfg, model, processor, summary)
    barrier(world)
    return summary


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m train_min.train", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    required = {"model", "data"}  # no default can stand for them
    helps, choices = field_help(), {"report_to": CHOICES, "compile": list(COMPILE), "attention": ATTENTION, "feed": FEEDS}
    for f in fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        if f.type in ("bool", bool):
            ap.add_argument(flag, action=argparse.BooleanOptionalAction, default=f.default, help=helps[f.name])
        else:
            kind = {"int": int, "float": float}.get(f.type if isinstance(f.type, str) else f.type.__name__, str)
            extra = {"required": True} if f.name in required else {"default": f.default}
            ap.add_argument(flag, type=kind, help=helps[f.name], **extra,
                            **({"choices": choices[f.name]} if f.name in choices else {}))
    summary = train(TrainConfig(**vars(ap.parse_args(argv))))
    if int(os.environ.get("RANK", "0")) > 0:
        return
    last = summary["history"][-1]
    print(f"done: {last['step']} steps, loss {last['loss']:.4f}, eval loss {last.get('eval_loss')}, saved to {Path(summary['config']['out']) / 'final'}")


if __name__ == "__main__":
    main()
