"""Random damage to every source format: bytes flipped, values of the wrong type, lengths far
off, unencodable text. Whatever the damage, the run finishes, every row read ends as a kept,
rejected or failed row with a reason, and the rejected rows can be written and read back."""

import json
import random
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq

from pipelines.config.source_config import ChecksConfig
from pipelines.sources.checks import make_turn
from pipelines.sources.image_files import Problem
from tests.published import published_rows
from tests.sources.helpers import conserved, encode, load, picture, run_recipe

ODD_VALUES = (None, 7, 3.5, True, [], {}, ["a", 1], {"from": "human"}, "", "x" * 5000, "\udcff", "ok\udcffok", "\x00",
              [{"from": "human", "value": None}], "../../../../etc/passwd", "/dev/zero", "file:///etc/hosts")


def _mutate_value(rng: random.Random, entry: dict) -> dict:
    entry = json.loads(json.dumps(entry))
    key = rng.choice(sorted(entry))
    if rng.random() < 0.5:
        entry[key] = rng.choice(ODD_VALUES)
    elif isinstance(entry[key], list) and entry[key]:
        entry[key] = entry[key] * rng.choice((0, 20)) if rng.random() < 0.5 else [rng.choice(ODD_VALUES)] + entry[key]
    elif isinstance(entry[key], str):
        entry[key] = entry[key] + rng.choice(("\udcff", "\ud800", "é" * 3000, "\u202e"))
    else:
        del entry[key]
    return entry


def _mutate_bytes(rng: random.Random, line: bytes) -> bytes:
    data = bytearray(line)
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data).replace(b"\n", b" ")


def _dump(entry) -> bytes:
    return json.dumps(entry).encode()  # lone surrogates travel as \udcff escapes, as real files have them


def _llava(tmp_path, rng, n):
    root = tmp_path / "llava"
    root.mkdir()
    (root / "a.png").write_bytes(encode(picture(1, (32, 32))))
    (root / "b.png").write_bytes(encode(picture(2, (32, 32)))[:60])
    lines = []
    for i in range(n):
        entry = {"id": f"e{i}", "image": rng.choice(("a.png", "b.png")),
                 "conversations": [{"from": "human", "value": f"<image>\nWhat is item {i}?"}, {"from": "gpt", "value": "boxes"}]}
        r = rng.random()
        lines.append(_dump(entry) if r < 0.2 else _mutate_bytes(rng, _dump(entry)) if r < 0.5 else _dump(_mutate_value(rng, entry)))
    (root / "data.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    # the same kind of damage in a JSON list (values only: one flipped byte would spoil the whole file)
    entries = [_mutate_value(rng, {"id": f"l{i}", "image": "a.png", "conversations": [
        {"from": "human", "value": f"Is item {i} red?"}, {"from": "gpt", "value": "yes"}]}) for i in range(n // 4)]
    (root / "list.json").write_bytes(_dump(entries))
    (root / "broken.json").write_bytes(_mutate_bytes(rng, _dump(entries))[:-7])  # a list that no longer parses
    blank = sum(1 for ln in lines if not ln.strip())
    return [{"kind": "llava", "name": name, "llava": {"json": str(root / f"{name}.{ext}"), "image_root": str(root)}}
            for name, ext in (("data", "jsonl"), ("list", "json"), ("broken", "json"))], n - blank + n // 4 + 1


def _imagefolder(tmp_path, rng, n):
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "f.png").write_bytes(encode(picture(3, (32, 32))))
    lines = []
    for i in range(n):
        row = {"file_name": "f.png", "question": f"How many boxes in {i}?", "answer": "3", "choices": ["2", "3"]}
        r = rng.random()
        lines.append(_dump(row) if r < 0.2 else _mutate_bytes(rng, _dump(row)) if r < 0.5 else _dump(_mutate_value(rng, row)))
    (folder / "metadata.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    return [{"kind": "imagefolder", "name": "folder", "imagefolder": {"dir": str(folder)}}], sum(1 for ln in lines if ln.strip())


def _parquets(tmp_path, rng, n):
    good = encode(picture(4, (32, 32)))
    images = [rng.choice((good, good[:50], b"", None, b"\x89PNG" + bytes(rng.randrange(256) for _ in range(40)))) for _ in range(n)]
    questions = [rng.choice((f"What is {i}?", "", None, "q" * 9000, "\u202e?")) for i in range(n)]
    answers = [rng.choice(("red", "", None, "a" * 3000)) for _ in range(n)]
    choices = [rng.choice((None, [], ["red"], ["red", "blue"], ["red", "red"], ["x"] * 20)) for _ in range(n)]
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    typed = pa.table({"image": pa.array([{"bytes": b, "path": None} for b in images], image_type),
                      "question": questions, "answer": answers, "choices": choices})
    pq.write_table(typed, tmp_path / "typed.parquet")
    # the columns hold other types than a VQA set's: ints, lists, paths in the image column
    odd = pa.table({"image": [rng.choice(("../../etc/passwd", "/proc/self/environ", "", "f.png")) for _ in range(n)],
                    "question": [rng.randrange(100) for _ in range(n)],
                    "answer": [[rng.choice(("red", "blue"))] * rng.randrange(3) for _ in range(n)]})
    pq.write_table(odd, tmp_path / "odd.parquet")
    return [{"kind": "hf", "name": name, "hf": {"path": str(tmp_path / f"{name}.parquet")}} for name in ("typed", "odd")], 2 * n


def test_random_damage_to_every_format_never_crashes_and_every_row_is_counted(tmp_path):
    rng = random.Random(17)
    llava, n_llava = _llava(tmp_path, rng, 120)
    folder, n_folder = _imagefolder(tmp_path, rng, 80)
    hub, n_hub = _parquets(tmp_path, rng, 60)
    outcome = run_recipe(tmp_path / "run", llava + folder + hub, ingest={"images": {"min_side": 4}})
    f = outcome.funnel.to_dict()
    assert conserved(outcome) and f["in"] == n_llava + n_folder + n_hub and f["failed"] == 0
    rejected = load(outcome, "rejected")
    assert len(rejected) == f["rejected"] and all(r["reason"] and r["detail"] and r["origin"] for r in rejected)
    reasons = Counter(r["reason"] for r in rejected)
    assert {"text_invalid", "entry_malformed", "file_malformed", "metadata_malformed", "field_wrong_type",
            "image_outside_root", "no_image"} <= set(reasons), reasons
    assert "unreadable_record" not in reasons, [r["detail"] for r in rejected if r["reason"] == "unreadable_record"]
    assert f["kept"] > 0 and {r["source"] for r in load(outcome, "extraction")} >= {"data", "folder"}


def test_a_lone_surrogate_is_its_records_problem():
    """Before: `record_id` raised UnicodeEncodeError outside the per-record guard and the run died."""
    for question, answer, choices in (("What\udcff?", "red", None), ("What?", "r\udcffed", None), ("Which?", "A", ["a\udcff", "b"])):
        try:
            make_turn(question, answer, choices, ChecksConfig())
            raise AssertionError("accepted")
        except Problem as p:
            assert p.reason == "text_invalid" and "\udcff" not in p.detail


def test_rejected_rows_with_damaged_origins_are_written(tmp_path):
    folder = tmp_path / "set"
    folder.mkdir()
    (folder / "data.jsonl").write_text(json.dumps({"id": "bad\udcffid", "image": "nowhere.png", "conversations": []}) + "\n")
    outcome = run_recipe(tmp_path / "run", [{"kind": "llava", "name": "s", "llava": {"json": str(folder / "data.jsonl")}}])
    (row,) = load(outcome, "rejected")
    assert row["reason"] == "conversation_empty" and "bad\\udcffid" in row["origin"]
    assert published_rows(str(outcome.out_dir), "rejected").num_rows == 1
