"""train_min's settings: `TrainConfig`, one field per command-line flag of `python -m
train_min.train`, with its default and help text, and the choices some of them take."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

ATTENTION = ["sdpa", "varlen", "masked"]  # --attention's values
FEEDS = ["stream", "memory"]  # --feed's values
# --compile: torch.compile's mode for each value (None: eager; auto: compile_mode decides)
COMPILE = {"auto": "auto", "on": "default", "off": None, "reduce-overhead": "reduce-overhead", "max-autotune": "max-autotune"}


def compile_mode(setting: str, device: str, world: int) -> str | None:
    """--compile's torch.compile mode, None for eager. auto: eager on the CPU; on CUDA, CUDA
    graphs in one process (on an H200: 1.84x at the SmolVLM shape's batch 16, whose step
    waited on the host's launches; as fast at batch 64 and the paper shape, at the same
    memory), plain compile under DDP, whose gradient hooks with graphs are not measured."""
    if setting == "auto":
        return None if device != "cuda" else "reduce-overhead" if world == 1 else "default"
    return COMPILE[setting]


def opt(default, help: str):
    """A TrainConfig field: its default, and the help text of its command-line flag."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    task: str = opt("perception", "perception (image + prompt -> extraction) | reasoner (text -> reasoning)")
    model: str = opt("", "the model to fine-tune: a local path or a Hub id")
    data: str = opt("", "a publish folder (extract-think run) or a Hub dataset id")
    out: str = opt("out/train", "where checkpoints and the final model go")
    max_length: int = opt(1024, "tokens per example: the reply is cut, never the prompt (longer prompts are skipped)")
    batch_size: int = opt(8, "examples per micro-batch and process")
    grad_accum: int = opt(1, "micro-batches per optimizer step")
    steps: int = opt(100, "optimizer steps")
    lr: float = opt(1e-4, "peak learning rate (AdamW), after the warm-up")
    min_lr: float = opt(1e-5, "learning rate at the last step (cosine decay)")
    warmup: int = opt(10, "steps of linear warm-up")
    weight_decay: float = opt(0.0, "AdamW weight decay")
    clip: float = opt(1.0, "gradient norm clipping")
    eval_fraction: float = opt(0.05, "held out besides the dataset's test split, by its rule (at 0.05: the same records)")
    eval_every: int = opt(50, "steps; 0: only at the end")
    save_every: int = opt(1000, "steps between checkpoints (out/checkpoints); 0: by time only")
    save_minutes: float = opt(30.0, "minutes between checkpoints, whichever of the two comes first; 0: by steps only")
    keep_checkpoints: int = opt(2, "the newest this many checkpoints are kept; a run resumes from the newest that loads")
    stop_after: int = opt(0, "run this many steps, save a checkpoint and exit (time-limited jobs); 0: run to the end")
    seed: int = opt(0, "data order and initialisation of new weights")
    device: str = opt("auto", "auto | cpu | cuda")
    lora_r: int = opt(0, "> 0: train LoRA adapters (peft) instead of all weights")
    gradient_checkpointing: bool = opt(False, "recompute activations in the backward pass: less memory, ~30% slower")
    loss_chunk: int = opt(512, "target tokens per logits chunk: the loss never holds more logits than this many rows")
    pack: int = opt(0, "> 0: each micro-batch's examples packed into rows of at most this many tokens, no padding between them")
    compile: str = opt("auto", "auto (CUDA: reduce-overhead, on with DDP; CPU: off) | on | off | reduce-overhead (on, with CUDA graphs) | max-autotune: torch.compile the towers")
    attention: str = opt("sdpa", "sdpa (no dense masks where exact) | varlen (packed rows, CUDA) | masked: transformers' own (train_min/attention.py)")
    pad_multiple: int = opt(0, "batch lengths padded up to a multiple of this, so compiled shapes repeat; 0: 64 when compiling, else 1")
    log_every: int = opt(10, "steps whose loss and gradient norm are read from the device at once (1: a host sync every step)")
    progress: bool = opt(True, "a progress bar with the loss and the eval loss")
    report_to: str = opt("auto", "auto (tensorboard if installed) | tensorboard | wandb | none (train_min/metrics.py)")
    profile: int = opt(0, "> 0: torch.profiler over this many steps after the first 10: <out>/profile/trace.json and top.txt")
    feed: str = opt("stream", "stream (examples encoded in worker processes as training needs them) | memory (all encoded first, held)")
    workers: int = opt(-1, "data worker processes per training process; -1: auto (the CPUs, shared by the processes, up to 8)")
    index_cache: str = opt("auto", 'folder of the per-row length index (train_min/index.py); auto: ~/.cache/extract-think; "": none')

    def check(self) -> None:
        """ValueError for a setting outside its choices."""
        for name, allowed in (("compile", COMPILE), ("attention", ATTENTION), ("feed", FEEDS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name}: {getattr(self, name)!r} is not one of {', '.join(allowed)}")


def field_help() -> dict[str, str]:
    """Each TrainConfig field's help: the --help text of its flag."""
    return {f.name: f.metadata["help"] for f in fields(TrainConfig)}
