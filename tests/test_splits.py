"""The `test` split: every config's rows of a record in the split a hash of the record id
names, the card's data files, what train_min holds out (the same records), and no test split
when the recipe asks for none."""

import datasets
import numpy as np
from huggingface_hub import DatasetCard

from pipelines.commands.run import run
from pipelines.config.recipe import read_recipe
from pipelines.core.splits import in_test
from train_min.data import load_rows
from train_min.index import held_out_rows

BASE = ["sources.0.synthetic.image_size=64", "sources.0.synthetic.families=[beakers,shapes]", "cache.dir=null",
        "teacher.oracle.error_rate=0.3", "output.min_kept=0"]


def test_every_config_splits_by_the_record_id_and_train_min_holds_out_the_same_records(tmp_path):
    outcome = run(read_recipe("quickstart", [*BASE, "sources.0.synthetic.num_records=40", "output.test_fraction=0.3",
                                             f"output.dir={tmp_path / 'out'}"]))
    out, f = str(outcome.out_dir), outcome.funnel
    for config, key, total in (("extraction", "id", f.kept), ("reasoning", "record_id", f.reasoning_rows), ("rejected", "id", f.ended)):
        loaded = datasets.load_dataset(out, config)
        assert set(loaded) == set(f.split_rows(config)) and (config == "rejected" or "test" in loaded), config
        assert all(in_test(i, 0.3) == (split == "test") for split, rows in loaded.items() for i in rows[key])
        assert {s: len(d) for s, d in loaded.items()} == f.split_rows(config) and sum(f.split_rows(config).values()) == total
    records = datasets.load_dataset(out, "extraction", split="test")["id"]
    assert set(datasets.load_dataset(out, "reasoning", split="test")["record_id"]) == set(records)  # a record's rows stay together
    card = DatasetCard.load(outcome.out_dir / "README.md")
    for c in card.data.configs:
        assert [d["split"] for d in c["data_files"]] == list(f.split_rows(c["config_name"]))
    assert 'split="test")' in card.text

    rows = load_rows(out, "reasoning")  # train_min: every split, each row with its own
    test = np.array([s == "test" for s in rows["split"]])
    assert test.sum() == f.split_rows("reasoning")["test"]
    assert (held_out_rows(rows, 0.0) == test).all() and (held_out_rows(rows, 0.3) == test).all()  # the same rule, the same rows
    wider = held_out_rows(rows, 0.6)
    assert (wider >= test).all() and wider.sum() > test.sum()  # more held out: never a test row trained on


def test_a_fraction_of_zero_publishes_train_only_and_train_min_holds_out_by_the_same_hash(tmp_path):
    outcome = run(read_recipe("quickstart", [*BASE, "sources.0.synthetic.num_records=12", "output.test_fraction=0",
                                             "teacher.oracle.error_rate=0", f"output.dir={tmp_path / 'out'}"]))
    assert set(datasets.load_dataset(str(outcome.out_dir), "extraction")) == {"train"}
    card = DatasetCard.load(outcome.out_dir / "README.md")
    assert all([d["split"] for d in c["data_files"]] == ["train"] for c in card.data.configs)
    rows = load_rows(str(outcome.out_dir), "extraction")
    assert set(rows["split"]) == {"train"}
    assert held_out_rows(rows, 0.5).tolist() == [in_test(i, 0.5) for i in rows["id"]]
