"""Decontamination against an eval set: the index on its own, then a real run whose eval set
is an imagefolder of re-encoded, resized copies of some training scenes."""

import io
import json

from PIL import Image

from filters.decontamination import EvalIndex, decontaminate, eval_entry
from pipelines.commands.run import run
from pipelines.config.recipe import read_recipe
from pipelines.config.source_config import SyntheticSource
from pipelines.core.images import phash
from pipelines.sources.synthetic import make_record
from tests.published import published_rows
from tests.sources.helpers import encode, picture

TRAIN = SyntheticSource(num_records=30, image_size=128, seed=3)


def _copy(record, size=96, quality=70) -> bytes:
    """The record's image as an eval set would hold it: resized and saved as JPEG."""
    with Image.open(io.BytesIO(record.images[0].bytes)) as im:
        return encode(im.convert("RGB").resize((size, size)), "JPEG", quality=quality)


def _photo_record(seed, question="What colour is the large square?", answer="red", data=None):
    from pipelines.core.record import ImageData, Record, Turn

    img = picture(seed, (96, 96))
    data = data or encode(img)
    return Record(f"r{seed}", "photos", "cc0", (ImageData.from_bytes(data, 96, 96, "PNG", phash=phash(img)),), (Turn(question, answer),))


def _with_image(record, data: bytes, size: int):
    """The record with its image replaced by `data` (hashed as the source would)."""
    import dataclasses

    from pipelines.core.record import ImageData

    with Image.open(io.BytesIO(data)) as im:
        return dataclasses.replace(record, images=(ImageData.from_bytes(data, size, size, "JPEG", phash=phash(im)),))


def test_index_matches_copies_by_hash_question_and_answer():
    base = _photo_record(1)
    with Image.open(io.BytesIO(base.images[0].bytes)) as im:
        jpeg = encode(im.resize((88, 88)), "JPEG", quality=90)
    copy = _with_image(_photo_record(1, "what colour is the large square", "Red"), jpeg, 88)
    index = EvalIndex([eval_entry(copy)], max_pixel_diff=255)  # these sharp toy pictures: the hash decides
    v = decontaminate(base, index)
    assert not v.keep and v.reason == "eval_contamination" and "bits" in v.detail and "same answer" in v.detail
    # same picture, other answer: a different item (two receipts of one template)
    assert decontaminate(_photo_record(1, answer="blue"), index).keep
    assert not decontaminate(_photo_record(1, answer="blue"), index, same_answers=False).keep
    assert not decontaminate(_photo_record(1, "Is it big?", "yes"), index, match="image").keep
    # another picture, the same question: only the question mode catches it
    other = _photo_record(40)
    assert decontaminate(other, index).keep
    assert not decontaminate(other, index, match="question").keep
    assert decontaminate(_photo_record(40, "Colour?", "red"), index, match="question").keep  # too short to judge


def test_a_hard_rescaled_sharp_copy_needs_the_pixel_check_loosened():
    base = _photo_record(2)
    with Image.open(io.BytesIO(base.images[0].bytes)) as im:
        jpeg = encode(im.resize((48, 48)), "JPEG", quality=50)
    copy = _with_image(_photo_record(2), jpeg, 48)
    entries = [eval_entry(copy)]
    assert decontaminate(base, EvalIndex(entries, max_hamming=8)).keep  # its edges moved by more than 24 levels
    v = decontaminate(base, EvalIndex(entries, max_hamming=8, max_pixel_diff=255))
    assert not v.keep and "bits" in v.detail


def test_synthetic_scenes_match_by_ground_truth_not_pixels():
    records = [make_record(i, TRAIN) for i in range(30)]
    index = EvalIndex([eval_entry(r) for r in records[:5]])
    assert all(not decontaminate(r, index).keep for r in records[:5])
    assert all(decontaminate(r, index).keep for r in records[5:])


def test_a_run_drops_contaminated_records_before_any_teacher_call(tmp_path):
    records = [make_record(i, TRAIN) for i in range(TRAIN.num_records)]
    evaldir = tmp_path / "eval"
    evaldir.mkdir()
    rows = []
    for k, r in enumerate(records[:6]):  # six training scenes leaked into the eval set
        (evaldir / f"copy{k}.jpg").write_bytes(_copy(r))
        t = r.turns[0]
        rows.append({"file_name": f"copy{k}.jpg", "question": t.question, "answer": t.answer, "choices": list(t.choices)})
    for k in range(4):  # and unrelated eval pictures
        (evaldir / f"other{k}.png").write_bytes(encode(picture(100 + k, (128, 128))))
        rows.append({"file_name": f"other{k}.png", "question": "What colour is the square?", "answer": "red", "choices": []})
    (evaldir / "metadata.jsonl").write_text("".join(json.dumps(x) + "\n" for x in rows))

    def recipe(decontam: bool, out: str):
        extra = [f"eval_sets=[{{kind: imagefolder, name: bench_eval, imagefolder: {{dir: '{evaldir}'}}}}]",
                 "filters=[{name: decontaminate, params: {max_hamming: 6}}, {name: answer_correct}]"] if decontam else []
        return read_recipe("quickstart", [
            f"sources.0.synthetic.num_records={TRAIN.num_records}", f"sources.0.synthetic.image_size={TRAIN.image_size}",
            f"sources.0.synthetic.seed={TRAIN.seed}", "teacher.oracle.error_rate=0", f"output.dir={tmp_path / out}",
            "cache.dir=null", *extra])

    plain = run(recipe(False, "plain"))
    clean = run(recipe(True, "clean"))
    f = clean.funnel.to_dict()
    assert f["rejected_by_reason"] == {"eval_contamination": 6} and f["kept"] == 24
    assert f["filters"][0] == {"filter": "decontaminate", "in": 30, "passed": 24, "rejected": 6, "reasons": {"eval_contamination": 6}}
    # no teacher call was spent on them: 4 stages of requests fewer per record (think: one per turn)
    per_record = plain.funnel.teacher_requests / 30
    assert f["teacher_requests"] < plain.funnel.teacher_requests - 6 * 3 and per_record > 3
    rejected = published_rows(str(clean.out_dir), "rejected")
    assert set(rejected["id"]) == {r.id for r in records[:6]}
    assert all(d.startswith("decontaminate: image within") and "bench_eval" in d for d in rejected["detail"])
    assert all(e is None for e in rejected["extraction"])
    card = (clean.out_dir / "README.md").read_text()
    assert "| `decontaminate` | 30 | 6 | 24 | `eval_contamination` 6 |" in card
