"""A table of bad inputs across the file formats, all in one run: each ends as a rejected
row with its own reason (and the origin to find it by), the good rows are kept, the run
completes and the counts add up."""

import json
from collections import Counter

import datasets

from tests.sources.helpers import conserved, encode, load, picture, png_claiming, run_recipe


def _conv(q="<image>\nWhat is shown?", a="boxes"):
    return [{"from": "human", "value": q}, {"from": "gpt", "value": a}]


# LLaVA entries (JSON lines): (marker id, entry or raw line, image file name -> bytes, expected reason)
def _llava_cases():
    ok = encode(picture(1))
    return [
        ("good-llava", {"image": "good.png", "conversations": _conv()}, {"good.png": ok}, None),
        ("no-image", {"conversations": _conv("What is 2+2?", "4")}, {}, "no_image"),
        ("missing-file", {"image": "nowhere.png", "conversations": _conv()}, {}, "image_missing"),
        ("zero-bytes", {"image": "empty.png", "conversations": _conv()}, {"empty.png": b""}, "image_empty"),
        ("truncated", {"image": "cut.png", "conversations": _conv()}, {"cut.png": encode(picture(2))[:150]}, "image_truncated"),
        ("corrupt", {"image": "bad.png", "conversations": _conv()}, {"bad.png": b"\x89PNG\r\n\x1a\n" + b"\x07" * 64}, "image_corrupt"),
        ("not-an-image", {"image": "notes.jpg", "conversations": _conv()}, {"notes.jpg": b"shopping list: eggs, milk"}, "image_unsupported"),
        ("icon", {"image": "x.ico", "conversations": _conv()}, {"x.ico": encode(picture(3), "ICO")}, "image_format_not_allowed"),
        ("bomb", {"image": "bomb.png", "conversations": _conv()}, {"bomb.png": png_claiming(30_000, 30_000)}, "image_too_large"),
        ("tiny", {"image": "tiny.png", "conversations": _conv()}, {"tiny.png": encode(picture(4, (3, 40)))}, "image_too_small"),
        ("two-placeholders", {"image": "good2.png", "conversations": _conv("<image><image>\nCompare.")}, {"good2.png": encode(picture(5))}, "image_placeholder_mismatch"),
        ("ends-on-human", {"image": "good3.png", "conversations": _conv() + [{"from": "human", "value": "And?"}]}, {"good3.png": encode(picture(6))}, "conversation_malformed"),
        ("no-messages", {"image": "good4.png", "conversations": []}, {"good4.png": encode(picture(7))}, "conversation_empty"),
        ("no-conversations", {"image": "good5.png"}, {}, "conversation_missing"),
        ("entry-is-a-list", ["not", "an", "object"], {}, "entry_malformed"),
        ("many-turns", {"image": "good6.png", "conversations": _conv() * 5}, {"good6.png": encode(picture(8))}, "too_many_turns"),
    ]


# imagefolder metadata rows (a string is written as the raw line)
def _folder_cases():
    return [
        ("good-folder", {"file_name": "f0.png", "question": "What is shown?", "answer": "A", "choices": ["boxes", "balls"]}, None),
        ("broken-json", '{"file_name": "f1.png", "question": ', "metadata_malformed"),
        ("no-file-name", {"question": "What is shown?", "answer": "boxes"}, "image_reference_missing"),
        ("no-question", {"file_name": "f2.png", "answer": "boxes"}, "question_missing"),
        ("blank-question", {"file_name": "f3.png", "question": "   ", "answer": "boxes"}, "question_empty"),
        ("no-answer", {"file_name": "f4.png", "question": "What is shown?"}, "answer_missing"),
        ("empty-answer", {"file_name": "f5.png", "question": "What is shown?", "answer": ""}, "answer_empty"),
        ("question-list", {"file_name": "f6.png", "question": ["What?", "Why?"], "answer": "boxes"}, "turns_mismatch"),  # a list of questions needs a list of answers
        ("answer-not-a-choice", {"file_name": "f7.png", "question": "Which?", "answer": "cones", "choices": ["boxes", "balls"]}, "choices_answer_absent"),
        ("choices-a-string", {"file_name": "f8.png", "question": "Which?", "answer": "boxes", "choices": "boxes or balls"}, "choices_invalid"),
        ("long-question", {"file_name": "f9.png", "question": "Why? " * 200, "answer": "boxes"}, "question_too_long"),
        ("long-answer", {"file_name": "f10.png", "question": "What is shown?", "answer": "boxes " * 100}, "answer_too_long"),
    ]


# Hub/parquet rows: (question, answer, image bytes or None, expected reason)
def _hub_cases():
    return [
        ("What is shown?", "boxes", None, "no_image"),
        ("What is shown?", "boxes", encode(picture(50))[:120], "image_truncated"),
        (None, "boxes", encode(picture(51)), "question_missing"),
        ("What is shown?", None, encode(picture(52)), "answer_missing"),
    ]


def build_corpus(tmp_path):
    """The bad-input corpus on disk: (sources, ingest, expected reason per marker, hub cases)."""
    llava = tmp_path / "llava"
    (llava / "img").mkdir(parents=True)
    lines, expected = [], {}
    for marker, entry, files, reason in _llava_cases():
        for name, data in files.items():
            (llava / "img" / name).write_bytes(data)
        if isinstance(entry, dict):
            entry = {"id": marker, **entry}
        lines.append(json.dumps(entry))
        expected[marker] = reason
    lines.insert(3, "")  # blank lines are skipped, not rows
    (llava / "data.jsonl").write_text("\n".join(lines) + "\n")

    folder = tmp_path / "folder"
    folder.mkdir()
    rows = []
    for i, (_marker, row, reason) in enumerate(_folder_cases()):
        (folder / f"f{i}.png").write_bytes(encode(picture(20 + i)))
        rows.append(row if isinstance(row, str) else json.dumps(row))
        expected[f"folder-line-{i + 1}"] = reason
    (folder / "metadata.jsonl").write_text("\n".join(rows) + "\n")

    # a Hub-style parquet: two good rows, an exact copy of one, a smaller JPEG copy of the
    # other, then rows with a missing image, a cut-off image, no question, no answer
    a, b = picture(40, (160, 120)), picture(41, (160, 120))
    hub = datasets.Dataset.from_dict({
        "image": [encode(a), encode(b), encode(a), encode(b.resize((120, 90)), "JPEG", quality=80)] + [c[2] for c in _hub_cases()],
        "question": ["What is shown?", "How many boxes?", "What is shown?", "How many boxes ?"] + [c[0] for c in _hub_cases()],
        "answer": ["boxes", "3", "boxes", "3"] + [c[1] for c in _hub_cases()],
    }, features=datasets.Features({"image": datasets.Image(), "question": datasets.Value("string"), "answer": datasets.Value("string")}))
    hub.to_parquet(str(tmp_path / "hub.parquet"))
    for i, case in enumerate(_hub_cases()):
        expected[f"hub-row-{4 + i}"] = case[3]

    sources = [
        {"kind": "llava", "name": "llava", "llava": {"json": str(llava / "data.jsonl"), "image_root": str(llava / "img")}},
        {"kind": "imagefolder", "name": "folder", "imagefolder": {"dir": str(folder)}},
        {"kind": "hf", "name": "hub", "hf": {"path": str(tmp_path / "hub.parquet")}},
    ]
    ingest = {"images": {"max_source_pixels": 10_000_000}, "checks": {"max_turns": 4, "max_question_chars": 500, "max_answer_chars": 100}}
    return sources, ingest, expected


def test_bad_inputs_become_rejected_rows_with_their_own_reasons(tmp_path):
    sources, ingest, expected = build_corpus(tmp_path)
    outcome = run_recipe(tmp_path, sources, ingest=ingest)

    f = outcome.funnel.to_dict()
    n_bad = sum(r is not None for r in expected.values()) + 2  # + the two copies in the parquet
    assert n_bad >= 30
    assert conserved(outcome)
    assert f["in"] == len(_llava_cases()) + len(_folder_cases()) + 4 + len(_hub_cases())
    assert f["rejected"] == n_bad and f["failed"] == 0 and f["kept"] == 4
    rejected = load(outcome, "rejected")
    reasons = Counter((r["source"], r["reason"]) for r in rejected)
    assert len({reason for _, reason in reasons}) >= 20 and set(reasons.values()) == {1}, reasons  # every kind its own reason
    for r in rejected:
        assert r["detail"] and r["origin"] and r["status"] == "rejected"
    by_reason = {(r["source"], r["reason"]): r for r in rejected}
    for marker, reason in expected.items():
        if reason is None:
            continue
        source = "folder" if marker.startswith("folder-") else "hub" if marker.startswith("hub-") else "llava"
        row = by_reason[(source, reason)]
        if source == "folder":
            assert row["origin"].startswith(f"metadata.jsonl line {marker.rsplit('-', 1)[1]}"), (reason, row["origin"])
        elif source == "hub":
            assert f"row {marker.rsplit('-', 1)[1]}" in row["origin"], (reason, row["origin"])
        elif reason != "entry_malformed":
            assert f"(id {marker})" in row["origin"], (reason, row["origin"])
    # the duplicate rows name the row that was kept
    kept_ids = {r["id"]: r["origin"] for r in load(outcome, "extraction")}
    for reason in ("duplicate", "near_duplicate"):
        named = [i for i in kept_ids if i in by_reason[("hub", reason)]["detail"]]
        assert len(named) == 1
    assert {r["source"] for r in load(outcome, "extraction")} == {"llava", "folder", "hub"}
