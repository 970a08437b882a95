"""What the training loop needs from the machine it runs on: the process group under
torchrun, compiled towers, the random number generators' state (for exact resumes), a
profile of some steps."""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

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


class StepProfiler:
    """`--profile N`: torch.profiler over N optimizer steps after the first 10 (compiles and
    warm-up excluded; fewer in a run too short for that). Writes `<out>/profile/trace.json`
    (open it in Perfetto or chrome://tracing) and `<out>/profile/top.txt`: how busy the
    device was over those steps' wall time, then the operators and kernels that took the
    most of it. Does nothing at 0."""

    def __init__(self, steps: int, out: Path, device: str, run_steps: int):
        self.dir, self.device, self.steps, self.times = Path(out) / "profile", device, steps, []
        self.prof = None
        if steps > 0:
            from torch.profiler import ProfilerActivity, profile, schedule

            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
            self.skip = skip = min(10, max(0, run_steps - steps - 1))
            self.prof = profile(activities=activities, schedule=schedule(wait=skip, warmup=1, active=steps, repeat=1),
                                on_trace_ready=self._save)
            self.prof.start()

    def step(self) -> None:
        if self.prof is not None:
            self.times.append(time.perf_counter())
            self.prof.step()

    def close(self) -> None:
        if self.prof is not None:
            self.prof.stop()
            self.prof = None

    def _save(self, prof) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        prof.export_chrome_trace(str(self.dir / "trace.json"))
        events = prof.key_averages()
        # step() k ends step k; the recorded steps are skip + 1 ... skip + steps (skip: the warm-up one)
        span = self.times[self.skip : self.skip + self.steps + 1]
        wall = span[-1] - span[0] if len(span) > 1 else float("nan")
        on_device = self.device == "cuda"
        if on_device:  # kernels, copies and memsets only: the trace's step annotations and launch-queue markers are not work
            busy = device_busy(json.loads((self.dir / "trace.json").read_text()))
        else:  # the operators' own times, summed over threads
            busy = sum(e.self_cpu_time_total for e in events if e.device_type == torch.autograd.DeviceType.CPU) / 1e6
        head = (f"{len(span) - 1} steps, {wall:.3f} s of wall time; {'device busy' if on_device else 'CPU operators, all threads,'} "
                f"{busy:.3f} s ({busy / wall:.0%} of it)\n\n")
        sort = "self_device_time_total" if on_device else "self_cpu_time_total"
        (self.dir / "top.txt").write_text(head + events.table(sort_by=sort, row_limit=40))


def device_busy(trace: dict) -> float:
    """Seconds in which the device ran at least one kernel, copy or memset, from a Chrome
    trace's events: their union, since kernels on several streams overlap."""
    spans = sorted((e["ts"], e["ts"] + e.get("dur", 0)) for e in trace["traceEvents"]
                   if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset"))
    total, end = 0.0, float("-inf")
    for start, stop in spans:
        if stop > end:
            total += stop - max(start, end)
            end = stop
    return total / 1e6
