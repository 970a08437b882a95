"""The training loop's data feed, flat in host memory at any dataset size.

- `Order`: which examples each step takes - the training examples in a seeded random order
  per epoch, global batches of batch_size x processes, each process its slice - and the data
  position (`state()`), from which a resumed run goes on exactly.
- `Stream` (the default): the published rows are read from the memory-mapped Arrow dataset
  and encoded (images decoded and processed, text tokenised), collated or packed in
  DataLoader worker processes, pinned by the DataLoader's pin-memory thread; a few batches
  per worker are in flight, no pixel is kept once its batch is trained on. Each process reads
  only its own slice of each batch. The global batch's target and token counts, which the
  loss and the log need, come from the `Index` (train_min/index.py), without encoding anyone
  else's examples.
- `InMemory` (`--feed memory`): every example encoded before training and held, collated a
  step ahead in a thread - the former feed, kept to measure the stream against.
"""

from __future__ import annotations

import os
from functools import partial

import numpy as np
import torch

from train_min.data import collate, pack


class Order:
    """Examples (positions into `examples`, an array of dataset rows) in a seeded random order,
    epoch after epoch; `next()` is this process's slice of the next global batch and the
    global batch; the remainder of an epoch is dropped, so batches stay full."""

    def __init__(self, examples: np.ndarray, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        self.examples, self.batch_size, self.seed, self.rank, self.world = np.asarray(examples), batch_size, seed, rank, world
        self.epoch, self.pos = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        perm = torch.randperm(len(self.examples), generator=torch.Generator().manual_seed(self.seed + self.epoch)).numpy()
        return self.examples[perm]

    def next(self) -> tuple[list[int], list[int]]:
        size = self.batch_size * self.world
        if self.pos + size > len(self._order):
            self.epoch, self.pos = self.epoch + 1, 0
            self._order = self._permutation()
        chosen = self._order[self.pos : self.pos + size].tolist()
        self.pos += size
        return chosen[self.rank * self.batch_size : (self.rank + 1) * self.batch_size], chosen

    def state(self) -> dict:
        return {"epoch": self.epoch, "pos": self.pos}

    def restore(self, state: dict) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]
        self._order = self._permutation()


class _Slices:
    """The DataLoader's batch sampler: this process's micro-batches, from a data position on."""

    def __init__(self, order: Order):
        self.order = order

    def __iter__(self):
        while True:
            yield self.order.next()[0]


class Encoded(torch.utils.data.Dataset):
    """Row i of the published config, encoded (the worker processes call this)."""

    def __init__(self, rows, encoder, pixel_dtype=None):
        self.rows, self.encoder, self.pixel_dtype = rows, encoder, pixel_dtype

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        example = self.encoder(self.rows[int(i)])
        if example is None:  # the index skips these: never asked for in training
            raise ValueError(f"row {i} does not fit max_length; the index should have skipped it")
        if self.pixel_dtype is not None and "pixel_values" in example:  # autocast computes in bf16: half the bytes moved
            example["pixel_values"] = example["pixel_values"].to(self.pixel_dtype)
        return example


def _batch(examples: list[dict], pad: int, pack_length: int, multiple: int, varlen: bool) -> dict:
    if pack_length:
        return pack(examples, pad, pack_length, False, multiple, varlen)
    return collate(examples, pad, False, multiple)


def _worker_init(_):
    os.environ["TOKENIZERS_PARALLELISM"] = "false"  # each worker is one of several processes already
    torch.set_num_threads(1)


def loader(dataset, batch_sampler, collate_fn, workers: int, pin: bool, persistent: bool = True) -> torch.utils.data.DataLoader:
    """A DataLoader of `batch_sampler`'s batches: `workers` processes (0: this one), 4 batches
    each in flight, pinned by the pin-memory thread when `pin`."""
    return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate_fn, num_workers=workers,
                                       pin_memory=pin, persistent_workers=persistent and workers > 0,
                                       prefetch_factor=4 if workers else None, worker_init_fn=_worker_init if workers else None)


class Stream:
    """Micro-batches encoded and collated in `workers` processes (0: in this one), in `order`'s
    order; `next()` is one step's micro-batches, each with the global batch's target and token
    counts (from `index`), and the data position after the step."""

    def __init__(self, dataset: Encoded, order: Order, index, micro: int, pad: int, pin: bool, workers: int,
                 pack_length: int = 0, multiple: int = 1, varlen: bool = False):
        self.index, self.micro = index, micro
        self.cursor = Order(order.examples, order.batch_size, order.seed, order.rank, order.world)  # the main process's copy
        self.cursor.restore(order.state())
        feeding = Order(order.examples, order.batch_size, order.seed, order.rank, order.world)
        feeding.restore(order.state())
        self.batches = iter(loader(dataset, _Slices(feeding), partial(_batch, pad=pad, pack_length=pack_length, multiple=multiple,
                                                                     varlen=varlen), workers, pin))

    def next(self) -> tuple[list[tuple[dict, int, int]], dict]:
        micro = []
        for _ in range(self.micro):
            _, chosen = self.cursor.next()
            micro.append((next(self.batches), int(self.index.targets[chosen].sum()), int(self.index.lengths[chosen].sum())))
        return micro, self.cursor.state()

    def close(self) -> None:
        shutdown = getattr(self.batches, "_shutdown_workers", None)  # workers=0 has none
        if shutdown is not None:
            shutdown()


class InMemory:
    """The same batches from examples encoded before training and held in a list (`examples`,
    by dataset row; None for rows not trained on), collated a step ahead in a thread."""

    def __init__(self, examples: list, order: Order, index, micro: int, pad: int, pin: bool,
                 pack_length: int = 0, multiple: int = 1, varlen: bool = False):
        from concurrent.futures import ThreadPoolExecutor

        self.examples, self.order, self.index, self.micro = examples, order, index, micro
        self.make = partial(pack, pad_id=pad, length=pack_length, pin=pin, multiple=multiple, varlen=varlen) if pack_length \
            else partial(collate, pad_id=pad, pin=pin, multiple=multiple)
        self.pool = ThreadPoolExecutor(max_workers=1)
        self.pending = self.pool.submit(self._make)

    def _make(self):
        micro = []
        for _ in range(self.micro):
            mine, chosen = self.order.next()
            micro.append((self.make([self.examples[i] for i in mine]), int(self.index.targets[chosen].sum()),
                          int(self.index.lengths[chosen].sum())))
        return micro, self.order.state()

    def next(self):
        got = self.pending.result()
        self.pending = self.pool.submit(self._make)
        return got

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


class HeldEval:
    """The evaluation batches from examples encoded before training and held (the memory
    feed's), collated afresh on every pass, in order."""

    def __init__(self, examples: dict, rows: np.ndarray, batch_size: int, pad: int, multiple: int):
        self.examples, self.rows, self.batch_size, self.pad, self.multiple = examples, rows, batch_size, pad, multiple

    def __iter__(self):
        for j in range(0, len(self.rows), self.batch_size):
            yield collate([self.examples[int(i)] for i in self.rows[j : j + self.batch_size]], self.pad, multiple=self.multiple)


def eval_batches(dataset: Encoded, rows: np.ndarray, batch_size: int, pad: int, multiple: int, workers: int):
    """The evaluation examples' batches, in order (collated, never packed), encoded in
    `workers` processes: an iterable to go through once per evaluation."""
    batches = [rows[i : i + batch_size].tolist() for i in range(0, len(rows), batch_size)]
    return loader(dataset, batches, partial(_batch, pad=pad, pack_length=0, multiple=multiple, varlen=False), workers, False)
