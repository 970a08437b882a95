"""The reasoning config's `meta` struct: kinds from a source's own features, JSON text where no
type is known, and every value kept (a misfit goes to `extra`), written and read back."""

import json

import datasets
import pyarrow as pa

from pipelines.config.source_config import Columns, HFSource, SourceConfig
from pipelines.publishing.meta import EXTRA, meta_features, meta_row, meta_schema


def _parquet(tmp_path, rows, name="set.parquet"):
    path = tmp_path / name
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    return str(path)


def _hf(path, meta, name="a"):
    return SourceConfig(kind="hf", name=name, hf=HFSource(path=path, columns=Columns(meta=meta)))


def test_kinds_come_from_the_sources_features_and_clashes_become_json(tmp_path):
    a = _parquet(tmp_path, [{"image": b"", "question": "q", "answer": "a", "category": "x", "level": 3, "tags": ["t"],
                             "info": {"k": 1}, "shared": 1}], "a.parquet")
    b = _parquet(tmp_path, [{"image": b"", "question": "q", "answer": "a", "shared": "one"}], "b.parquet")
    schema = dict(meta_schema([_hf(a, ["category", "level", "tags", "info", "shared"]), _hf(b, ["shared"], "b"),
                               SourceConfig(kind="synthetic")]))
    assert (schema["category"], schema["level"], schema["tags"], schema["info"]) == ("string", "int64", "list:string", "json")
    assert schema["shared"] == "json"  # an int in one source, a string in the other
    assert (schema["turn"], schema["answers"], schema["family"], schema["args"]) == ("int64", "list:string", "string", "json")


def test_every_value_is_kept_typed_as_json_or_in_extra_and_reads_back(tmp_path):
    schema = (("answers", "list:string"), ("args", "json"), ("level", "int64"), ("score", "float64"), ("turn", "int64"))
    metas = [{"answers": ["red", "red"], "args": {"n": 3, "deep": [1, {"x": None}]}, "level": 2, "score": 1, "turn": 0},
             {"level": "high", "answers": [1, 2], "unknown": {"a": 1}, "turn": 2**70},  # misfits and a key no field names
             {}]
    rows = [meta_row(m, schema) for m in metas]
    assert rows[0] == {"answers": ["red", "red"], "args": json.dumps(metas[0]["args"], sort_keys=True), "level": 2, "score": 1.0,
                       "turn": 0, EXTRA: None}
    assert rows[1]["level"] is None and rows[1]["answers"] is None and rows[1]["turn"] is None
    assert json.loads(rows[1][EXTRA]) == {"level": "high", "answers": [1, 2], "unknown": {"a": 1}, "turn": 2**70}
    assert rows[2] == dict.fromkeys([*dict(schema), EXTRA])
    features = datasets.Features({"meta": meta_features(schema)})
    path = tmp_path / "meta.parquet"
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"meta": r} for r in rows], schema=features.arrow_schema), path)
    back = datasets.load_dataset("parquet", data_files=str(path), split="train", features=features)
    assert [r["meta"] for r in back] == rows
