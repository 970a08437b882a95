"""The miniature experiment's jobs: training runs and evaluations, in this process or in
spawned worker processes (one GPU holds several small models), each evaluation started as
soon as the models it needs exist."""

from __future__ import annotations

import json
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

from pipelines.config import build


def log(msg: str) -> None:
    print(f"[experiment] {msg}", flush=True)


def params(path: Path) -> int:
    """Parameters of a saved model, from its safetensors header (no weights loaded)."""
    import struct

    total = 0
    for f in Path(path).glob("*.safetensors"):
        with open(f, "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        for name, t in header.items():
            if name != "__metadata__":
                n = 1
                for d in t["shape"]:
                    n *= d
                total += n
    return total


class _InProcess:
    """The executor of `jobs: 1`: each job runs when submitted, in this process."""

    def submit(self, fn, job) -> Future:
        future = Future()
        try:
            future.set_result(fn(job))
        except Exception as e:  # noqa: BLE001 - reported as the job's failure, as a worker's would be
            future.set_exception(e)
        return future


def schedule(train: list[dict], evals: list[tuple[dict, set[str]]], workers: int, time_limit: float = 0) -> tuple[list[str], int]:
    """The training jobs and the evaluations (each with the runs it needs), `workers` spawned
    processes at a time; an evaluation starts as soon as its models are trained, ahead of
    further training, so results come seed by seed. A job that fails is logged and the
    evaluations that need it dropped; the others go on. After `time_limit` seconds (0: none)
    no job starts; those running finish. Returns (failures, jobs not started)."""
    failed, todo_train, todo_eval, running = [], list(train), list(evals), {}
    untrained, stop_at = {j["out"] for j in train}, time.monotonic() + time_limit if time_limit else float("inf")
    ex = ProcessPoolExecutor(workers, mp_context=get_context("spawn")) if workers > 1 else _InProcess()
    try:
        while todo_train or todo_eval or running:
            while len(running) < max(1, workers) and time.monotonic() < stop_at:
                ready = next((e for e in todo_eval if not e[1] & untrained), None)
                if ready:
                    todo_eval.remove(ready)
                    running[ex.submit(_eval_job, ready[0])] = ("eval", ready[0])
                elif todo_train:
                    job = todo_train.pop(0)
                    running[ex.submit(_train_job, job)] = ("train", job)
                else:
                    break
            if not running:  # past the time limit, or evaluations left whose models failed
                break
            for future in wait(running, return_when=FIRST_COMPLETED).done:
                kind, job = running.pop(future)
                if future.exception() is not None:
                    failed.append(f"{kind} {job['out']}: {type(future.exception()).__name__}: {future.exception()}")
                    log(f"failed: {failed[-1]}")
                elif kind == "train":
                    untrained.discard(job["out"])
    except BaseException:  # Ctrl-C or a time-limited job's signal: stop the workers, keep what is finished
        if isinstance(ex, ProcessPoolExecutor):
            for process in list((ex._processes or {}).values()):
                process.terminate()
            ex.shutdown(wait=False, cancel_futures=True)
        raise
    if isinstance(ex, ProcessPoolExecutor):
        ex.shutdown()
    broken = [(job, needs) for job, needs in todo_eval if needs & untrained - {j["out"] for j in todo_train}]
    failed += [f"eval {job['out']}: needs a model that failed" for job, _ in broken]
    return failed, len(todo_train) + len(todo_eval) - len(broken)


def _quiet(job: dict) -> None:
    """No library progress bars where ours are off (jobs in parallel would interleave them)."""
    if not job.get("progress", True):
        import datasets
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()


def _train_job(job: dict) -> dict:
    from train_min.train import TrainConfig, train

    _quiet(job)
    started = time.perf_counter()
    summary = train(build(TrainConfig, job))
    last = summary["history"][-1]
    log(f"trained {job['out']}: {last['step']} steps in {time.perf_counter() - started:.0f} s, "
         f"loss {last['loss']:.3f}, eval loss {last.get('eval_loss')}")
    return {"out": job["out"], "seconds": time.perf_counter() - started, "loss": last["loss"]}


def _eval_job(job: dict) -> dict:
    from train_min.evaluate import EvalConfig, evaluate

    _quiet(job)
    started = time.perf_counter()
    summary = evaluate(build(EvalConfig, job))
    models = {name: job[name]["model"] for name in ("perception", "reasoner") if name == "perception" or job["systems"] != ["direct"]}
    where = job["perception"]["transformers"]["device"]
    if where == "cuda":
        import torch

        where = torch.cuda.get_device_name()
    (Path(job["out"]) / "models.json").write_text(json.dumps(
        {"parameters": {name: params(path) for name, path in models.items()}, "device": where, "seconds": time.perf_counter() - started}))
    acc = next(iter(summary["accuracy"].values()))["all"]["accuracy"]
    log(f"evaluated {job['out']}: {100 * acc:.1f}% in {time.perf_counter() - started:.0f} s")
    return {"out": job["out"], "seconds": time.perf_counter() - started}
