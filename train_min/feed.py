"""The training loop's data feed: encoded examples in a seeded order, each process's slice
of every global batch, collated (or packed) a step ahead in a background thread."""

from __future__ import annotations

import torch

from train_min.data import collate, pack


class Batches:
    """Examples in a seeded random order, epoch after epoch; `state()` is the data position."""

    def __init__(self, examples: list[dict], batch_size: int, seed: int, pad: int, pin: bool = False, rank: int = 0, world: int = 1,
                 pack_length: int = 0, multiple: int = 1, varlen: bool = False):
        self.examples, self.batch_size, self.seed, self.pad, self.pin = examples, batch_size, seed, pad, pin
        self.rank, self.world, self.pack_length, self.multiple, self.varlen = rank, world, pack_length, multiple, varlen
        self.epoch, self.pos = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> list[int]:
        return torch.randperm(len(self.examples), generator=torch.Generator().manual_seed(self.seed + self.epoch)).tolist()

    def next(self) -> tuple[dict, int, int]:
        """This process's batch of the next global batch (`batch_size` x `world` examples;
        process `rank` takes its slice), and the global batch's target and token counts."""
        size = self.batch_size * self.world
        if self.pos + size > len(self._order):  # the remainder is dropped: batches stay full
            self.epoch, self.pos = self.epoch + 1, 0
            self._order = self._permutation()
        idx = self._order[self.pos : self.pos + size]
        self.pos += size
        mine = idx[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        chosen = [self.examples[i] for i in mine]
        if self.pack_length:
            batch = pack(chosen, self.pad, self.pack_length, self.pin, self.multiple, self.varlen)
        else:
            batch = collate(chosen, self.pad, self.pin, self.multiple)
        return batch, sum(self.examples[i]["n_targets"] for i in idx), sum(len(self.examples[i]["input_ids"]) for i in idx)

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
