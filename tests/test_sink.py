"""The shard writer: files of at most rows_per_shard rows in small row groups, numbered once
every bundle committed, leftovers of failed bundles deleted, on any fsspec filesystem."""

import apache_beam as beam
import datasets
import fsspec
import pyarrow.parquet as pq
import pytest
from apache_beam.testing.test_pipeline import TestPipeline

from pipelines.beam.sink import WriteShards
from pipelines.publishing.rows import Layout

FEATURES = Layout().features("reasoning")


def _rows(n):
    return [{"id": f"r{i:03d}", "record_id": "x", "prompt": "p", "extraction": "e", "question": "q", "choices": ["a"], "answer_type": "text",
             "answer": "a", "reasoning": "r" * i, "thinking": "", "source": "s", "meta": {}} for i in range(n)]


@pytest.mark.parametrize("rows_per_shard,expected", [(7, [7, 7, 7, 2]), (250, [230]), (100, [100, 100, 30])])
def test_shards_hold_at_most_rows_per_shard_and_load_with_their_features(tmp_path, rows_per_shard, expected):
    rows = _rows(23 if rows_per_shard == 7 else 230)
    folder = tmp_path / "staging"
    (folder / "reasoning").mkdir(parents=True)
    (folder / "reasoning" / ".tmp-train-deadbeef.parquet").write_bytes(b"half a file from a bundle that failed")
    with TestPipeline(runner="FnApiRunner") as p:
        _ = p | beam.Create(rows) | WriteShards(str(folder), "reasoning", "run1", rows_per_shard, FEATURES)
    shards = sorted((folder / "reasoning").iterdir())
    assert [s.name for s in shards] == [f"train-run1-{i:05d}-of-{len(expected):05d}.parquet" for i in range(len(expected))]
    assert sorted(pq.ParquetFile(s).metadata.num_rows for s in shards) == sorted(expected)
    groups = [pq.ParquetFile(s).metadata.row_group(g).num_rows for s in shards for g in range(pq.ParquetFile(s).num_row_groups)]
    assert max(groups) <= min(100, rows_per_shard)
    back = datasets.load_dataset("parquet", data_files=[str(s) for s in shards], split="train")
    assert sorted(back["id"]) == [r["id"] for r in rows] and back.features == FEATURES


def test_the_splits_of_a_config_share_its_folder_and_keep_their_own_files(tmp_path):
    """Two splits written side by side: each numbers and cleans up only its own files (the
    other's temporary files, still being written, are not leftovers)."""
    folder = tmp_path / "staging"
    (folder / "reasoning").mkdir(parents=True)
    (folder / "reasoning" / ".tmp-test-inflight.parquet").write_bytes(b"the test split's writer is not done")
    with TestPipeline(runner="FnApiRunner") as p:
        _ = p | "Train" >> beam.Create(_rows(5)) | "WriteTrain" >> WriteShards(str(folder), "reasoning", "run1", 3, FEATURES)
    names = sorted(f.name for f in (folder / "reasoning").iterdir())
    assert names == [".tmp-test-inflight.parquet", "train-run1-00000-of-00002.parquet", "train-run1-00001-of-00002.parquet"]
    with TestPipeline(runner="FnApiRunner") as p:
        _ = p | "Test" >> beam.Create(_rows(2)) | "WriteTest" >> WriteShards(str(folder), "reasoning", "run1", 3, FEATURES, split="test")
    names = sorted(f.name for f in (folder / "reasoning").iterdir())
    assert names == ["test-run1-00000-of-00001.parquet", "train-run1-00000-of-00002.parquet", "train-run1-00001-of-00002.parquet"]


def test_a_config_without_rows_writes_nothing(tmp_path):
    with TestPipeline(runner="FnApiRunner") as p:
        _ = p | beam.Create([]) | WriteShards(str(tmp_path), "rejected", "run1", 10, Layout().features("rejected"))
    assert not (tmp_path / "rejected").exists()


def test_shards_go_to_an_fsspec_url():
    fs = fsspec.filesystem("memory")
    with TestPipeline(runner="FnApiRunner") as p:
        _ = p | beam.Create(_rows(12)) | WriteShards("memory://bucket/staging", "reasoning", "run2", 5, FEATURES)
    names = sorted(fs.ls("/bucket/staging/reasoning", detail=False))
    assert [n.rsplit("/", 1)[1] for n in names] == [f"train-run2-{i:05d}-of-00003.parquet" for i in range(3)]
    with fs.open(names[0], "rb") as f:
        assert pq.ParquetFile(f).metadata.num_rows in (5, 2)
    fs.rm("/bucket", recursive=True)
