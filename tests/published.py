"""Every row of a published config, whatever its splits (train, then test)."""

from __future__ import annotations

import datasets


def published_rows(folder, config: str, streaming: bool = False):
    """The rows of `config` in the publish at `folder`: its `train` split, then its `test` split
    where it has one (a Dataset; an IterableDataset when `streaming`)."""
    data_files = datasets.load_dataset_builder(str(folder), config).config.data_files
    splits = sorted(map(str, data_files), key=lambda name: (name != "train", name))
    if streaming:
        parts = [datasets.load_dataset(str(folder), config, split=s, streaming=True) for s in splits]
        return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
    # one read of "train+test": `concatenate_datasets` of the two loses nested columns in `flatten()`
    return datasets.load_dataset(str(folder), config, split="+".join(splits))
