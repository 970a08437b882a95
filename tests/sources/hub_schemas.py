"""Local copies of the common Hub VQA schemas, a few rows each, written at test time.

Column names, types and answer encodings follow each dataset's card (`dataset_info`
features): ScienceQA (derek-thomas/ScienceQA), MMStar (Lin-Chen/MMStar), A-OKVQA
(HuggingFaceM4/A-OKVQA), VQAv2 (lmms-lab/VQAv2), GQA (lmms-lab/GQA instructions + the image
zip), TextVQA (lmms-lab/textvqa), VizWiz (the official train.json + images), OCR-VQA
(howard-hou/OCR-VQA), ChartQA (HuggingFaceM4/ChartQA), DocVQA (lmms-lab/DocVQA), AI2D
(lmms-lab/ai2d), The Cauldron (HuggingFaceM4/the_cauldron) and a CoIN-format LLaVA JSON.

Each builder writes its set under a folder and returns `(where, expected)`: `where` holds
the keys that replace the Hub path in the README's snippet (`path`, and `image_root` or
`json`), `expected` one entry per row: a list of turns `(question, choices, gold,
answer_type, meta subset)`, or `("rejected", reason, words the detail must contain)`.
"""

from __future__ import annotations

import json
from pathlib import Path

import datasets

from tests.sources.helpers import picture

S, I64, I8 = datasets.Value("string"), datasets.Value("int64"), datasets.Value("int8")
L = datasets.List
IMG = datasets.Image()


def _parquet(folder: Path, name: str, features: dict, rows: list[dict]) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    columns = {k: [r[k] for r in rows] for k in features}
    path = folder / f"{name}-00000-of-00001.parquet"
    datasets.Dataset.from_dict(columns, features=datasets.Features(features)).to_parquet(str(path))
    return str(path)


def _pics(seed: int, n: int):
    return [picture(seed + i, (80, 60)) for i in range(n)]


def scienceqa(root: Path):
    f = {"image": IMG, "question": S, "choices": L(S), "answer": I8, "hint": S, "task": S, "grade": S, "subject": S,
         "topic": S, "category": S, "skill": S, "lecture": S, "solution": S}
    base = {"task": "closed choice", "grade": "grade4", "subject": "natural science", "topic": "physics",
            "category": "Velocity", "skill": "Compare", "lecture": "", "solution": ""}
    p = _pics(100, 4)
    rows = [
        {**base, "image": p[0], "question": "Which number is shown on the sign?", "choices": ["1", "2", "4"], "answer": 1, "hint": ""},
        {**base, "image": p[1], "question": "Which material is this spatula made of?", "choices": ["rubber", "cotton"], "answer": 0,
         "hint": "Select the better answer.", "category": "Materials"},
        {**base, "image": None, "question": "Which word would you find on a dictionary page?", "choices": ["cap", "cut"], "answer": 1, "hint": ""},
        {**base, "image": p[3], "question": "Which is warmer?", "choices": ["a", "b", "c"], "answer": 7, "hint": ""},
    ]
    meta = {"subject": "natural science", "topic": "physics", "grade": "grade4"}
    expected = [
        [("Which number is shown on the sign?", ("1", "2", "4"), "B", "choice", {**meta, "category": "Velocity"})],
        [("Context: Select the better answer.\nWhich material is this spatula made of?", ("rubber", "cotton"), "A", "choice",
          {**meta, "category": "Materials"})],
        ("rejected", "no_image", ["no image"]),
        ("rejected", "choices_answer_absent", ["7", "index", "3 choices", "'answer'", "'choices'"]),
    ]
    return {"path": _parquet(root / "scienceqa" / "data", "train", f, rows)}, expected


def mmstar(root: Path):
    f = {"index": I64, "question": S, "image": IMG, "answer": S, "category": S, "l2_category": S,
         "meta_info": {"source": S, "split": S, "image_path": S}}
    p = _pics(110, 3)
    info = {"source": "SEEDBench_IMG", "split": "val", "image_path": "images/0.jpg"}
    rows = [
        {"index": 0, "image": p[0], "answer": "A", "category": "coarse perception", "l2_category": "image scene and topic", "meta_info": info,
         "question": "Which option describe the object relationship in the image correctly?\nOptions: A: The suitcase is on the book., "
                     "B: The suitcase is beneath the cat., C: The suitcase is beneath the bed., D: The suitcase is beneath the book."},
        {"index": 1, "image": p[1], "answer": "B", "category": "instance reasoning", "l2_category": "single-instance reasoning",
         "meta_info": info, "question": "How many dots are there?\nOptions: A: 1, B: 2, C: 3, D: 4"},
        {"index": 2, "image": p[2], "answer": "B", "category": "math", "l2_category": "numeric commonsense and calculation", "meta_info": info,
         "question": "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end.\n"
                     "Question: Is the number of red cubes less than 3?\nChoices:\n(A) Yes\n(B) No"},
    ]
    expected = [
        [("Which option describe the object relationship in the image correctly?",
          ("The suitcase is on the book.", "The suitcase is beneath the cat.", "The suitcase is beneath the bed.",
           "The suitcase is beneath the book."), "A", "choice", {"category": "coarse perception", "l2_category": "image scene and topic"})],
        [("How many dots are there?", ("1", "2", "3", "4"), "B", "choice", {"category": "instance reasoning"})],
        [("Is the number of red cubes less than 3?", ("Yes", "No"), "B", "choice", {"category": "math"})],
    ]
    return {"path": _parquet(root / "mmstar", "val", f, rows)}, expected


def aokvqa(root: Path):
    f = {"image": IMG, "question_id": S, "question": S, "choices": L(S), "correct_choice_idx": I8, "direct_answers": L(S),
         "difficult_direct_answer": datasets.Value("bool"), "rationales": L(S)}
    p = _pics(120, 2)
    direct = ["car"] * 6 + ["taxi"] * 3 + ["cab"]
    rows = [
        {"image": p[0], "question_id": "22MexNkBPpdZGX6sxbxVBH", "question": "What is the vehicle in front used for?",
         "choices": ["racing", "hauling", "carrying passengers", "farming"], "correct_choice_idx": 2, "direct_answers": direct,
         "difficult_direct_answer": False, "rationales": ["It is a taxi."]},
        {"image": p[1], "question_id": "2Fa8sZCkqvWwe5sJMqTzKp", "question": "Which season is it?",
         "choices": ["summer", "winter", "spring", "fall"], "correct_choice_idx": 0, "direct_answers": ["summer"] * 10,
         "difficult_direct_answer": False, "rationales": ["People wear shorts."]},
    ]
    expected = [
        [("What is the vehicle in front used for?", ("racing", "hauling", "carrying passengers", "farming"), "C", "choice",
          {"question_id": "22MexNkBPpdZGX6sxbxVBH", "answers": direct})],
        [("Which season is it?", ("summer", "winter", "spring", "fall"), "A", "choice", {"question_id": "2Fa8sZCkqvWwe5sJMqTzKp"})],
    ]
    return {"path": _parquet(root / "aokvqa" / "data", "train", f, rows)}, expected


def vqav2(root: Path):
    f = {"question_type": S, "multiple_choice_answer": S, "answers": L({"answer": S, "answer_confidence": S, "answer_id": I64}),
         "image_id": I64, "answer_type": S, "question_id": I64, "question": S, "image": IMG}
    p = _pics(130, 2)

    def ann(words):
        return [{"answer": w, "answer_confidence": "yes", "answer_id": i + 1} for i, w in enumerate(words)]
    dogs = ["2"] * 8 + ["3", "two"]
    rows = [
        {"question_type": "how many", "multiple_choice_answer": "2", "answers": ann(dogs), "image_id": 9, "answer_type": "number",
         "question_id": 9000, "question": "How many dogs are there?", "image": p[0]},
        {"question_type": "is it", "multiple_choice_answer": "yes", "answers": ann(["yes"] * 9 + ["no"]), "image_id": 10,
         "answer_type": "yes/no", "question_id": 10000, "question": "Is it sunny?", "image": p[1]},
    ]
    expected = [
        [("How many dogs are there?", (), "2", "number", {"question_type": "how many", "answer_type": "number", "answers": dogs})],
        [("Is it sunny?", (), "yes", "yesno", {"answer_type": "yes/no"})],
    ]
    return {"path": _parquet(root / "vqav2", "validation", f, rows)}, expected


def gqa(root: Path):
    f = {"id": S, "imageId": S, "question": S, "answer": S, "fullAnswer": S, "isBalanced": datasets.Value("bool"),
         "types": {"structural": S, "semantic": S, "detailed": S}, "semanticStr": S}
    images = root / "gqa" / "images"
    images.mkdir(parents=True)
    for i, img in enumerate(_pics(140, 2)):
        img.save(images / f"n16118{i}.jpg", quality=90)
    types = {"structural": "query", "semantic": "attr", "detailed": "color"}
    rows = [
        {"id": "02930152", "imageId": "n161180", "question": "What color is the large box?", "answer": "red",
         "fullAnswer": "The box is red.", "isBalanced": True, "types": types, "semanticStr": "select: box"},
        {"id": "02930153", "imageId": "n161181", "question": "Is the box to the left of the ball?", "answer": "no",
         "fullAnswer": "No, the box is to the right of the ball.", "isBalanced": True,
         "types": {"structural": "verify", "semantic": "rel", "detailed": "relVerify"}, "semanticStr": "select: box"},
        {"id": "02930154", "imageId": "n999999", "question": "What is on the table?", "answer": "cup",
         "fullAnswer": "The cup is on the table.", "isBalanced": True, "types": types, "semanticStr": "select: table"},
        {"id": "02930155", "imageId": "../../secret", "question": "What is it?", "answer": "cup",
         "fullAnswer": "It is a cup.", "isBalanced": True, "types": types, "semanticStr": "select: table"},
    ]
    expected = [
        [("What color is the large box?", (), "red", "text", {"types": types})],
        [("Is the box to the left of the ball?", (), "no", "yesno", {"types": {"structural": "verify", "semantic": "rel", "detailed": "relVerify"}})],
        ("rejected", "image_missing", ["n999999.jpg"]),
        ("rejected", "image_outside_root", ["secret"]),
    ]
    path = _parquet(root / "gqa" / "questions", "train", f, rows)
    return {"path": path, "image_root": str(root / "gqa")}, expected


def textvqa(root: Path):
    f = {"image_id": S, "question_id": I64, "question": S, "question_tokens": L(S), "image": IMG, "image_width": I64,
         "image_height": I64, "flickr_original_url": S, "flickr_300k_url": S, "answers": L(S), "image_classes": L(S),
         "set_name": S, "ocr_tokens": L(S)}
    p = _pics(150, 2)
    brand = ["nokia"] * 7 + ["nokia phone"] * 2 + ["samsung"]
    base = {"image_width": 80, "image_height": 60, "flickr_original_url": "", "flickr_300k_url": "", "set_name": "train"}
    rows = [
        {**base, "image_id": "0054c91397f2fe05", "question_id": 0, "question": "what is the brand of this phone?",
         "question_tokens": ["what", "is"], "image": p[0], "answers": brand, "image_classes": ["Mobile phone"], "ocr_tokens": ["NOKIA"]},
        {**base, "image_id": "005635e119b9f32f", "question_id": 1, "question": "what number is on the jersey?",
         "question_tokens": ["what"], "image": p[1], "answers": ["23"] * 10, "image_classes": ["Person"], "ocr_tokens": ["23"]},
    ]
    expected = [
        [("what is the brand of this phone?", (), "nokia", "text", {"question_id": 0, "answers": brand})],
        [("what number is on the jersey?", (), "23", "number", {"question_id": 1})],
    ]
    return {"path": _parquet(root / "textvqa" / "data", "train", f, rows)}, expected


def vizwiz(root: Path):
    folder = root / "vizwiz"
    (folder / "train").mkdir(parents=True)
    for i, img in enumerate(_pics(160, 3)):
        img.save(folder / "train" / f"VizWiz_train_{i:08d}.jpg", quality=90)

    def ann(words):
        return [{"answer": w, "answer_confidence": "yes"} for w in words]
    soup = ["tomato soup"] * 6 + ["soup"] * 3 + ["unanswerable"]
    rows = [
        {"image": "VizWiz_train_00000000.jpg", "question": "What kind of soup is this?", "answers": ann(soup),
         "answer_type": "other", "answerable": 1},
        {"image": "VizWiz_train_00000001.jpg", "question": "What is the expiration date?", "answers": ann(["unanswerable"] * 10),
         "answer_type": "unanswerable", "answerable": 0},
        {"image": "VizWiz_train_00000002.jpg", "question": "Is this light on?", "answers": ann(["yes"] * 8 + ["no"] * 2),
         "answer_type": "yes/no", "answerable": 1},
    ]
    (folder / "train.json").write_text(json.dumps(rows))
    expected = [
        [("What kind of soup is this?", (), "tomato soup", "text", {"answer_type": "other", "answers": soup})],
        ("rejected", "unanswerable", ["answerable", "0"]),
        [("Is this light on?", (), "yes", "yesno", {"answer_type": "yes/no"})],
    ]
    return {"path": str(folder / "train.json"), "image_root": str(folder / "train")}, expected


def ocrvqa(root: Path):
    f = {"image": IMG, "image_id": S, "questions": L(S), "answers": L(S), "ocr_tokens": L(S),
         "ocr_info": L({"word": S, "bounding_box": {"width": datasets.Value("float64"), "height": datasets.Value("float64"),
                                                    "top_left_x": datasets.Value("float64"), "top_left_y": datasets.Value("float64")}}),
         "title": S, "authorName": S, "genre": S, "image_width": I64, "image_height": I64, "image_url": S, "set_name": S}
    p = _pics(170, 2)
    base = {"ocr_tokens": [], "ocr_info": [], "image_width": 80, "image_height": 60, "image_url": "", "set_name": "train"}
    rows = [
        {**base, "image": p[0], "image_id": "1885004639", "title": "Garden Design", "authorName": "Jane Doe", "genre": "Crafts",
         "questions": ["Who wrote this book?", "What is the title of this book?", "Is this a comedy book?"],
         "answers": ["Jane Doe", "Garden Design", "No"]},
        {**base, "image": p[1], "image_id": "0000000001", "title": "T", "authorName": "A", "genre": "G",
         "questions": ["Who wrote this book?", "What is the genre of this book?"], "answers": ["A"]},
    ]
    meta = {"title": "Garden Design", "genre": "Crafts"}
    expected = [
        [("Who wrote this book?", (), "Jane Doe", "text", {**meta, "turn": 0}),
         ("What is the title of this book?", (), "Garden Design", "text", {**meta, "turn": 1}),
         ("Is this a comedy book?", (), "no", "yesno", {**meta, "turn": 2})],
        ("rejected", "turns_mismatch", ["'questions'", "2 questions", "'answers'", "1 answers"]),
    ]
    return {"path": _parquet(root / "ocrvqa" / "data", "train", f, rows)}, expected


def chartqa(root: Path):
    f = {"image": IMG, "query": S, "label": L(S), "human_or_machine": datasets.ClassLabel(names=["human", "machine"])}
    p = _pics(180, 2)
    rows = [
        {"image": p[0], "query": "What was the revenue in 2019?", "label": ["45"], "human_or_machine": 0},
        {"image": p[1], "query": "Which country has the highest bar?", "label": ["Brazil"], "human_or_machine": 1},
    ]
    expected = [
        [("What was the revenue in 2019?", (), "45", "number", {"human_or_machine": 0, "answers": ["45"]})],
        [("Which country has the highest bar?", (), "Brazil", "text", {"human_or_machine": 1})],
    ]
    return {"path": _parquet(root / "chartqa" / "data", "train", f, rows)}, expected


def docvqa(root: Path):
    f = {"questionId": S, "question": S, "question_types": L(S), "image": IMG, "docId": I64, "ucsf_document_id": S,
         "ucsf_document_page_no": S, "answers": L(S), "data_split": S}
    p = _pics(190, 2)
    rows = [
        {"questionId": "49153", "question": "What is the ratio of the mixture?", "question_types": ["figure/diagram"], "image": p[0],
         "docId": 14465, "ucsf_document_id": "pybv0228", "ucsf_document_page_no": "81", "answers": ["1/8", "one eighth"],
         "data_split": "val"},
        {"questionId": "24580", "question": "What is the name of the company?", "question_types": ["layout"], "image": p[1],
         "docId": 5, "ucsf_document_id": "x", "ucsf_document_page_no": "1", "answers": ["ITC Limited"], "data_split": "val"},
    ]
    expected = [
        [("What is the ratio of the mixture?", (), "1/8", "text", {"question_types": ["figure/diagram"], "alternatives": ["1/8", "one eighth"]})],
        [("What is the name of the company?", (), "ITC Limited", "text", {"question_types": ["layout"]})],
    ]
    return {"path": _parquet(root / "docvqa" / "DocVQA", "validation", f, rows)}, expected


def ai2d(root: Path):
    f = {"question": S, "options": L(S), "answer": S, "image": IMG}
    p = _pics(200, 3)
    rows = [
        {"question": "Which stage comes after the egg?", "options": ["adult", "larva", "pupa", "nymph"], "answer": "1", "image": p[0]},
        {"question": "How many legs does the insect have?", "options": ["4", "6", "1", "2"], "answer": "1", "image": p[1]},
        {"question": "Which label shows the sun?", "options": ["A", "B", "C"], "answer": "5", "image": p[2]},
    ]
    expected = [
        [("Which stage comes after the egg?", ("adult", "larva", "pupa", "nymph"), "B", "choice", {})],
        [("How many legs does the insect have?", ("4", "6", "1", "2"), "B", "choice", {})],
        ("rejected", "choices_answer_absent", ["'5'", "index", "3 choices", "'options'"]),
    ]
    return {"path": _parquet(root / "ai2d" / "data", "test", f, rows)}, expected


def cauldron(root: Path):
    f = {"images": L(IMG), "texts": L({"user": S, "assistant": S, "source": S})}
    p = _pics(210, 2)
    rows = [
        {"images": [p[0]], "texts": [{"user": "Question: Which part of the plant makes food?\nChoices:\nA. root\nB. leaf\nC. stem\n"
                                               "Answer with the letter.", "assistant": "Answer: B", "source": "AI2D"}]},
        {"images": [p[1]], "texts": [
            {"user": "What color is the bus?\nGive a very brief answer.", "assistant": "Red.", "source": "VQAv2"},
            {"user": "Is it parked?\nGive a very brief answer.", "assistant": "Yes.", "source": "VQAv2"}]},
    ]
    expected = [
        [("Which part of the plant makes food?", ("root", "leaf", "stem"), "B", "choice", {"instruction": "Answer with the letter."})],
        [("What color is the bus?", (), "Red", "text", {"turn": 0}), ("Is it parked?", (), "yes", "yesno", {"turn": 1})],
    ]
    return {"path": _parquet(root / "the_cauldron" / "ai2d", "train", f, rows)}, expected


def coin(root: Path):
    folder = root / "coin"
    (folder / "images" / "scienceqa").mkdir(parents=True)
    for i, img in enumerate(_pics(220, 3)):
        img.save(folder / "images" / "scienceqa" / f"{i}.png")
    entries = [
        {"id": "sqa-0", "image": "scienceqa/0.png", "conversations": [
            {"from": "human", "value": "<image>\nContext: Figure: Arches National Park.\nWhich word describes the weather?\n"
                                       "A. humid\nB. dry\nAnswer with the option's letter from the given choices directly."},
            {"from": "gpt", "value": "B"}]},
        {"id": "viz-1", "image": "scienceqa/1.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat is in this can?\nWhen the provided information is insufficient, respond with "
                                       "'Unanswerable'.\nAnswer the question using a single word or phrase."},
            {"from": "gpt", "value": "Unanswerable"}]},
        {"id": "tvqa-2", "image": "scienceqa/2.png", "conversations": [
            {"from": "human", "value": "<image>\nWhat brand is the phone?\nAnswer the question using a single word or phrase."},
            {"from": "gpt", "value": "Nokia"}]},
    ]
    (folder / "train.json").write_text(json.dumps(entries))
    expected = [
        [("Context: Figure: Arches National Park.\nWhich word describes the weather?", ("humid", "dry"), "B", "choice",
          {"instruction": "Answer with the option's letter from the given choices directly."})],
        ("rejected", "unanswerable", ["Unanswerable"]),
        [("What brand is the phone?", (), "Nokia", "text", {"turn": 0})],
    ]
    return {"json": str(folder / "train.json"), "image_root": str(folder / "images")}, expected


BUILDERS = {"scienceqa": scienceqa, "mmstar": mmstar, "aokvqa": aokvqa, "vqav2": vqav2, "gqa": gqa, "textvqa": textvqa,
            "vizwiz": vizwiz, "ocrvqa": ocrvqa, "chartqa": chartqa, "docvqa": docvqa, "ai2d": ai2d,
            "cauldron-ai2d": cauldron, "coin-scienceqa": coin}
