"""What the training loop needs from the machine it runs on: the process group under
torchrun, compiled towers, the random number generators' state (for exact resumes)."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from train_min.loss import parts


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


def compile_towers(model, mode: str = "default", dynamic: bool | None = False) -> list[str]:
    """torch.compile (in place: the weights keep their names) the language model and the
    vision tower, or a causal LM's body; the loss stays outside (it is its own fused kernel
    chain). `mode`: torch.compile's (reduce-overhead: CUDA graphs, so a step is a few graph
    launches instead of thousands of kernel launches; nothing changes on a CPU). `dynamic`:
    False, static shapes (each new one a recompile); None, torch's default: a dimension
    that changes is made symbolic at its first recompile. Returns what was compiled."""
    body = parts(model)[0]
    towers = [n for n in ("text_model", "language_model", "vision_model", "vision_tower") if isinstance(getattr(body, n, None), torch.nn.Module)]
    for name in towers:
        getattr(body, name).compile(dynamic=dynamic, mode=mode)
    if not towers:
        body.compile(dynamic=dynamic, mode=mode)
    return towers or ["model"]


def shapes_warning(max_length: int, multiple: int) -> str | None:
    """Why a compiled run may slow down, or None: lengths padded to `multiple` can take more
    shapes than torch.compile recompiles for (torch._dynamo.config.recompile_limit, 8 by
    default); each shape is a recompile (about a minute at 1B parameters on an H200) and past
    the limit torch runs new shapes uncompiled. Names the --pad-multiple that keeps them within."""
    limit = torch._dynamo.config.recompile_limit
    shapes = -(-max_length // multiple)
    if shapes <= limit:
        return None
    fits = -(-max_length // limit // 64) * 64
    return (f"compile: lengths up to {max_length} padded to a multiple of {multiple} can be {shapes} shapes, each a recompile, "
            f"and past {limit} torch runs new ones uncompiled; --pad-multiple {fits} keeps them to {limit} (packing keeps one width)")


def distributed(device: str) -> tuple[int, int]:
    """(rank, world size). Under torchrun (WORLD_SIZE > 1) the process group is set up here:
    NCCL with one GPU a process, gloo on the CPU. Otherwise (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1
    import torch.distributed as dist

    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device == "cuda" else "gloo")
    return dist.get_rank(), world


def barrier(world: int) -> None:
    if world > 1:
        torch.distributed.barrier()
