"""The training config the train_min tests run: tiny, two steps, on the CPU, no eval."""

from train_min.train import TrainConfig


def run_config(tmp_path, model, data, name="run", **kw) -> TrainConfig:
    base = dict(task="perception", model=str(model), data=str(data), out=str(tmp_path / name), max_length=192, batch_size=4,
                steps=2, lr=1e-3, min_lr=1e-4, warmup=1, eval_fraction=0.0, eval_every=0, progress=False, device="cpu",
                index_cache=str(tmp_path / "index"))
    return TrainConfig(**{**base, **kw})
