"""Every source format, built at test time, through a real recipe run and back through
`datasets.load_dataset`."""

import json

import datasets
from PIL import Image

from tests.sources.helpers import conserved, encode, load, picture, run_recipe


def _llava(tmp_path):
    root = tmp_path / "llava"
    (root / "images" / "coco").mkdir(parents=True)
    picture(1, (120, 80)).save(root / "images" / "coco" / "a.png")
    picture(2, (64, 64)).save(root / "images" / "b.jpg", quality=90)
    entries = [
        {"id": "multi", "image": "coco/a.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat colour is the largest box?"}, {"from": "gpt", "value": "Red"},
            {"from": "human", "value": "How many boxes are there?"}, {"from": "gpt", "value": "3"},
            {"from": "human", "value": "Is there a circle?\nAnswer the question using a single word or phrase."}, {"from": "gpt", "value": "No"}]},
        {"id": "options", "image": "b.jpg", "conversations": [
            {"from": "human", "value": "<image>\nWhich corner is empty?\nA. top left\nB. bottom right\nAnswer with the option's letter from the given choices directly."},
            {"from": "gpt", "value": "B"}]},
        {"id": "text-only", "conversations": [{"from": "human", "value": "What is 2+2?"}, {"from": "gpt", "value": "4"}]},
    ]
    (root / "data.json").write_text(json.dumps(entries))
    return {"kind": "llava", "name": "llava-mix", "license": "cc-by-4.0", "llava": {"json": str(root / "data.json"), "image_root": str(root / "images")}}


def _hub_parquet(tmp_path):
    features = datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"),
                                  "answer": datasets.Value("string"), "options": datasets.List(datasets.Value("string"))})
    ds = datasets.Dataset.from_dict({
        "image": [picture(10 + i, (100, 70)) for i in range(4)],
        "question": [f"What is in picture {i}?" for i in range(4)],
        "answer": ["boxes", "B", "lines", "A"],
        "options": [[], ["cat", "dog"], [], ["sun", "moon", "star"]],
    }, features=features)
    path = tmp_path / "hub" / "train-00000-of-00001.parquet"
    path.parent.mkdir()
    ds.to_parquet(str(path))
    return {"kind": "hf", "name": "hub-parquet", "hf": {"path": str(path), "columns": {"choices": "options"}}}


def _saved_with_conversations(tmp_path):
    ds = datasets.Dataset.from_dict({
        "img": [encode(picture(20 + i)) for i in range(3)],
        "conversations": [[{"from": "human", "value": f"<image>\nWhat number is this, {i}?"}, {"from": "gpt", "value": str(i)}] for i in range(3)],
    })
    path = tmp_path / "saved"
    datasets.DatasetDict({"train": ds}).save_to_disk(str(path))
    return {"kind": "hf", "name": "saved", "hf": {"path": str(path), "columns": {"image": "img", "question": None, "answer": None, "conversations": "conversations"}}}


def _json_with_paths(tmp_path):
    root = tmp_path / "jsonsrc"
    (root / "img").mkdir(parents=True)
    rows = []
    for i in range(3):
        picture(30 + i).save(root / "img" / f"{i}.png")
        rows.append({"file": f"img/{i}.png", "q": f"Question {i}?", "a": f"answer {i}"})
    (root / "rows.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return {"kind": "hf", "name": "jsonl", "hf": {"path": str(root / "rows.jsonl"), "columns": {"image": "file", "question": "q", "answer": "a"}}}


def _imagefolder(tmp_path):
    root = tmp_path / "folder" / "train"
    root.mkdir(parents=True)
    lines = []
    for i in range(3):
        picture(40 + i, (50, 90)).save(root / f"p{i}.png")
        lines.append(json.dumps({"file_name": f"p{i}.png", "question": f"Which way is item {i} facing?", "answer": "left", "choices": ["left", "right"]}))
    (root / "metadata.jsonl").write_text("\n".join(lines) + "\n")
    return {"kind": "imagefolder", "name": "folder", "imagefolder": {"dir": str(tmp_path / "folder"), "split": "train"}}


def test_every_format_in_one_recipe(tmp_path):
    sources = [_llava(tmp_path), _hub_parquet(tmp_path), _saved_with_conversations(tmp_path), _json_with_paths(tmp_path), _imagefolder(tmp_path)]
    outcome = run_recipe(tmp_path, sources, ingest={"images": {"max_pixels": 4000}})
    f = outcome.funnel.to_dict()
    assert conserved(outcome) and f["in"] == 3 + 4 + 3 + 3 + 3
    assert f["rejected"] == 1 and f["rejected_by_reason"] == {"no_image": 1}
    kept = load(outcome, "extraction")
    by_source = {}
    for row in kept:
        by_source.setdefault(row["source"], []).append(row)
    assert {k: len(v) for k, v in by_source.items()} == {"llava-mix": 2, "hub-parquet": 4, "saved": 3, "jsonl": 3, "folder": 3}
    multi = next(r for r in by_source["llava-mix"] if "multi" in r["origin"])
    assert multi["questions"] == ["What colour is the largest box?", "How many boxes are there?", "Is there a circle?"]
    assert multi["license"] == "cc-by-4.0" and multi["original_size"] == [120, 80]
    assert isinstance(multi["image"], Image.Image) and multi["image"].width * multi["image"].height <= 4000
    assert abs(multi["image"].width / multi["image"].height - 1.5) < 0.05  # aspect kept
    reasoning = load(outcome, "reasoning")
    options = [r for r in reasoning if r["question"] == "Which corner is empty?"]
    assert options and options[0]["choices"] == ["top left", "bottom right"] and options[0]["answer"] == "B"
    hub = {r["question"]: r for r in reasoning if r["source"] == "hub-parquet"}
    assert hub["What is in picture 1?"]["choices"] == ["cat", "dog"] and hub["What is in picture 1?"]["answer"] == "B"
    assert hub["What is in picture 3?"]["answer"] == "A" and hub["What is in picture 0?"]["answer_type"] == "text"
    folder = [r for r in reasoning if r["source"] == "folder"]
    assert {r["answer"] for r in folder} == {"A"}  # "left" is option A
    rejected = load(outcome, "rejected")
    assert [(r["reason"], r["source"]) for r in rejected] == [("no_image", "llava-mix")]
    assert "text-only" in rejected[0]["origin"] and rejected[0]["questions"] == ["What is 2+2?"]
    card = (outcome.out_dir / "README.md").read_text()
    assert "cc-by-4.0" in card


def test_a_streamed_dataset_in_shards_reads_every_row_once(tmp_path):
    rows = {"image": [encode(picture(60 + i)) for i in range(12)], "question": [f"Q{i}?" for i in range(12)], "answer": [str(i) for i in range(12)]}
    folder = tmp_path / "stream"
    folder.mkdir()
    for part in range(3):  # three files: three shards when streaming
        datasets.Dataset.from_dict({k: v[part * 4:(part + 1) * 4] for k, v in rows.items()}).to_parquet(str(folder / f"train-{part}.parquet"))
    source = {"kind": "hf", "name": "streamed", "hf": {"path": "parquet", "data_files": [str(folder / "*.parquet")], "streaming": True}}
    outcome = run_recipe(tmp_path, [source])
    assert outcome.funnel.records_in == 12 == outcome.funnel.kept
    reasoning = load(outcome, "reasoning")
    assert sorted(r["answer"] for r in reasoning) == sorted(rows["answer"])


def test_limit_and_contiguous_shards_of_a_local_dataset(tmp_path):
    ds = datasets.Dataset.from_dict({"image": [encode(picture(80 + i)) for i in range(10)], "question": [f"Q{i}?" for i in range(10)], "answer": [str(i) for i in range(10)]})
    ds.to_parquet(str(tmp_path / "d.parquet"))
    outcome = run_recipe(tmp_path, [{"kind": "hf", "limit": 7, "hf": {"path": str(tmp_path / "d.parquet"), "shards": 3}}])
    assert outcome.funnel.records_in == 7 == outcome.funnel.kept
    origins = sorted(int(r["origin"].rsplit(" ", 1)[1]) for r in load(outcome, "extraction"))
    assert origins == list(range(7))
