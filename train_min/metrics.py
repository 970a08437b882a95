"""Where training metrics go besides the progress bar and train_config.json: TensorBoard event
files, a Weights & Biases run, or nowhere.

    --report-to auto          TensorBoard when it is installed, else none (the default)
    --report-to tensorboard   event files under OUT/runs (view: tensorboard --logdir OUT/runs)
    --report-to wandb         a W&B run (offline unless WANDB_MODE says otherwise; sync later
                              with `wandb sync OUT/wandb/offline-run-*`)
    --report-to none
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

CHOICES = ("auto", "tensorboard", "wandb", "none")


class Reporter:
    """Scalars by step to the chosen backend; `log` and `close` are no-ops for none."""

    def __init__(self, kind: str, out: Path, config: dict):
        if kind not in CHOICES:
            raise ValueError(f"report_to must be one of {CHOICES}, got {kind!r}")
        if kind == "auto":
            kind = "tensorboard" if importlib.util.find_spec("tensorboard") else "none"
        self.kind, self._tb, self._wandb = kind, None, None
        if kind == "tensorboard":
            if not importlib.util.find_spec("tensorboard"):
                raise ValueError("--report-to tensorboard needs the tensorboard package: pip install tensorboard")
            from torch.utils.tensorboard import SummaryWriter

            self.where = out / "runs"
            self._tb = SummaryWriter(log_dir=str(self.where))
            self._tb.add_text("config", "\n".join(f"    {k}: {v}" for k, v in config.items()))
        elif kind == "wandb":
            if not importlib.util.find_spec("wandb"):
                raise ValueError("--report-to wandb needs the wandb package: pip install wandb")
            import wandb

            self.where = out / "wandb"
            self.where.mkdir(parents=True, exist_ok=True)
            self._wandb = wandb.init(project=os.environ.get("WANDB_PROJECT", "extract-think"), dir=str(out), config=config,
                                     mode=os.environ.get("WANDB_MODE", "offline"), name=Path(config.get("out", "train")).name,
                                     reinit="finish_previous")
        else:
            self.where = None

    def log(self, record: dict) -> None:
        scalars = {k: v for k, v in record.items() if k != "step" and isinstance(v, (int, float))}
        if self._tb is not None:
            for key, value in scalars.items():
                self._tb.add_scalar(f"train/{key}" if key != "eval_loss" else "eval/loss", value, record["step"])
        if self._wandb is not None:
            self._wandb.log({("eval/loss" if k == "eval_loss" else f"train/{k}"): v for k, v in scalars.items()}, step=record["step"])

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


class StepLog:
    """The steps' loss and gradient norm, kept on the device until read at once (one host
    sync for several steps), then into the history, the reporter and the progress bar; a
    step's seconds are the mean of the window they were read in."""

    def __init__(self, history: list, reporter: Reporter, bar):
        self.history, self.reporter, self.bar = history, reporter, bar
        self.pending, self.window = [], time.perf_counter()

    def __len__(self) -> int:
        return len(self.pending)

    def add(self, step: int, loss_sum, grad_norm, targets: int, tokens: int, lr: float) -> None:
        self.pending.append((step, loss_sum, grad_norm, targets, tokens, lr))
        self.bar.update(1)

    def flush(self, eval_loss: float | None = None) -> None:
        """The pending steps read from the device; `eval_loss` goes with the last of them."""
        import torch

        values = torch.stack([torch.stack([t.float(), g.float()]) for _, t, g, *_ in self.pending]).tolist()
        now = time.perf_counter()
        for (s, _, _, n_t, n_tok, lr), (t, g) in zip(self.pending, values):
            record = {"step": s, "loss": t / max(n_t, 1), "lr": lr, "grad_norm": g, "tokens": n_tok, "targets": n_t,
                      "seconds": (now - self.window) / len(self.pending)}
            if s == self.pending[-1][0] and eval_loss is not None:
                record["eval_loss"] = eval_loss
            self.history.append(record)
            self.reporter.log(record)
        self.pending.clear()
        self.window = now
        last_eval = next((r["eval_loss"] for r in reversed(self.history) if "eval_loss" in r), None)
        self.bar.set_postfix(loss=f"{self.history[-1]['loss']:.3f}", **({"eval_loss": f"{last_eval:.3f}"} if last_eval is not None else {}))
