"""The reasoning config's `meta` column as a typed struct.

A turn's meta holds the source's declared `columns.meta` and what reading it added (every
annotator's answer, alternatives, the turn's number, ...). Its struct has one field per key
a run can write, typed where the type is known before the run: the keys this tool adds
(fixed types), a Hub or file source's declared columns (from the dataset's own features:
strings, numbers, booleans and lists of them), the synthetic scenes' family and template.
A field whose type cannot be known (a nested or mixed column, a column two sources give
different types, the synthetic scenes' `args`, any column of a LLaVA or image-folder source)
holds JSON text, and the card says which; a value that does not fit its field, or a key no
field names, goes to `extra` (a JSON object), so nothing is lost and no row fails.
"""

from __future__ import annotations

import json

import datasets

from pipelines.core.record import to_jsonable

JSON = "json"  # a field of JSON text
EXTRA = "extra"
# keys the sources' reading adds to a turn's meta (pipelines/sources/checks.py, ingest.py)
ADDED = {"answers": "list:string", "alternatives": "list:string", "gold_fallback": "string", "answerable": "bool",
         "instruction": "string", "turn": "int64"}
SYNTHETIC = {"family": "string", "template": "string", "args": JSON}
_SCALARS = {"string": str, "bool": bool, "int64": int, "float64": float}


def _kind(feature) -> str:
    """A source feature as a field kind: string, bool, int64, float64, list:<scalar>, or json."""
    if isinstance(feature, datasets.Value):
        dtype = str(feature.dtype)
        if dtype in ("string", "large_string"):
            return "string"
        if dtype == "bool":
            return "bool"
        if dtype.startswith(("int", "uint")):
            return "int64"
        if dtype.startswith("float"):
            return "float64"
        return JSON
    if isinstance(feature, (datasets.List, datasets.Sequence, datasets.LargeList)):
        inner = _kind(feature.feature)
        return f"list:{inner}" if inner in _SCALARS else JSON
    return JSON


_HF_KINDS: dict[str, tuple[tuple[str, str], ...]] = {}  # an HF source's settings -> its meta columns' kinds


def _hf_kinds(hf, source_name: str) -> tuple[tuple[str, str], ...]:
    """The kinds of an HF source's meta columns, from the dataset's features (opened once per
    process: the run, its card and its rows all ask)."""
    from pipelines.config import to_plain
    from pipelines.sources.hf import open_dataset

    key = json.dumps(to_plain(hf), sort_keys=True, default=str)
    if key not in _HF_KINDS:
        features = open_dataset(hf, 1, source_name).features or {} if hf.columns.meta else {}
        _HF_KINDS[key] = tuple((c, _kind(features[c]) if c in features else JSON) for c in hf.columns.meta)
    return _HF_KINDS[key]


def _source_kinds(source) -> dict[str, str]:
    if source.kind == "synthetic":
        return dict(SYNTHETIC)
    if source.kind == "hf":
        return dict(_hf_kinds(source.hf, source.name))
    columns = getattr(source, source.kind).columns if hasattr(getattr(source, source.kind), "columns") else None
    return dict.fromkeys(columns.meta if columns else (), JSON)


def meta_schema(sources) -> tuple[tuple[str, str], ...]:
    """(field, kind) pairs of the meta struct of a run over `sources`, sorted by field."""
    kinds: dict[str, str] = dict(ADDED)
    for source in sources:
        for name, kind in _source_kinds(source).items():
            if name in ADDED or name == EXTRA:
                continue  # the added key's type wins; a declared value that does not fit goes to `extra`
            kinds[name] = kind if kinds.get(name, kind) == kind else JSON
    return tuple(sorted(kinds.items()))


def feature(kind: str):
    if kind.startswith("list:"):
        return datasets.List(datasets.Value(kind[5:]))
    return datasets.Value("string" if kind == JSON else kind)


def meta_features(schema) -> dict:
    return {**{name: feature(kind) for name, kind in schema}, EXTRA: datasets.Value("string")}


def _fits(value, kind: str) -> bool:
    if kind.startswith("list:"):
        return isinstance(value, list) and all(_fits(v, kind[5:]) for v in value)
    t = _SCALARS[kind]
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool) and -2**63 <= value < 2**63
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, t)


def meta_row(meta: dict, schema) -> dict:
    """A turn's meta as the struct's value: each field typed (or JSON text), the rest in `extra`."""
    plain = to_jsonable(meta or {})
    kinds = dict(schema)
    row: dict = dict.fromkeys(kinds)
    extra = {}
    for key, value in plain.items():
        kind = kinds.get(key)
        if kind is None or value is None:
            if kind is None:
                extra[key] = value
        elif kind == JSON:
            row[key] = json.dumps(value, sort_keys=True, ensure_ascii=False)
        elif _fits(value, kind):
            row[key] = float(value) if kind == "float64" else value
        else:
            extra[key] = value
    row[EXTRA] = json.dumps(extra, sort_keys=True, ensure_ascii=False) if extra else None
    return row


def json_fields(schema) -> list[str]:
    """The fields that hold JSON text (said in the card)."""
    return [name for name, kind in schema if kind == JSON]
