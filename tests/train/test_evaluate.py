"""The Extract+Think evaluation: answer parsing and scoring on known cases, budget forcing
and reflexive-word blocking on real (tiny) models, and whole runs on held-out records."""

import json
import re

import pytest

from pipelines.config.recipe import TeacherConfig
from pipelines.core.record import Turn
from tests.published import published_rows
from train_min.evaluate import EvalConfig, evaluate, markdown, score, table
from train_min.infer import Completion, TransformersGenerator, chat, think, word_variants

CHOICE = Turn("What colour is the bus?", "B", ("blue", "red", "green"), "choice")
NUMBER = Turn("How many circles?", "12", (), "number")
YESNO = Turn("Is there a dog?", "yes", (), "yesno")
TEXT = Turn("What time does the clock show?", "4:30", (), "text")


@pytest.mark.parametrize("reply, turn, direct, parsed, correct", [
    ("The bus in the description is red.\nAnswer: B", CHOICE, False, "B", True),
    ("Answer: (b) red", CHOICE, False, "(b) red", True),
    ("It must be the red one.\nAnswer: red", CHOICE, False, "red", True),
    ("Answer: A", CHOICE, False, "A", False),
    ("Answer: B) green", CHOICE, False, "B) green", False),  # a letter with another option's text
    ("There are twelve.\nAnswer: twelve", NUMBER, False, "twelve", True),
    ("Answer: 12 circles", NUMBER, False, "12 circles", True),
    ("Answer: 13", NUMBER, False, "13", False),
    ("Yes, one is shown.\nAnswer: Yes", YESNO, False, "Yes", True),
    ("Answer: no", YESNO, False, "no", False),
    ("The hands point at 4 and 6.\nAnswer: 4:30", TEXT, False, "4:30", True),
    ("<think>Answer: 5:30</think>\nThe answer is 4:30.", TEXT, False, "4:30", True),  # thinking never answers
    # no answer line: the last line, as the paper's parser does; words for "4:30" do not match it
    ("The clock shows half past four", TEXT, False, "The clock shows half past four", False),
    ("yes", YESNO, True, "yes", True),  # a direct answer may be the bare reply
    ("yes", YESNO, False, "yes", True),  # a reasoner's too, through the last-line fallback
    ("Let me think.\nAnswer:", YESNO, False, None, False),  # an empty answer line answers nothing
    ("B\nbecause it is red", CHOICE, True, "B", True),
    ("", NUMBER, True, None, False),
])
def test_answers_are_parsed_and_scored(reply, turn, direct, parsed, correct):
    assert score(reply, turn, direct) == (parsed, correct)


def test_the_table_counts_per_system_source_and_category():
    rows = [{"system": s, "source": src, "category": c, "correct": ok} for s, src, c, ok in [
        ("extract_think", "a", "clock", True), ("extract_think", "a", "clock", False), ("extract_think", "b", "clock", True),
        ("direct", "a", "clock", False), ("direct", "a", "clock", False), ("direct", "b", "clock", True)]]
    columns, acc = table(rows, ["extract_think", "direct"])
    assert columns == ["a/clock", "b/clock", "all"]
    assert acc["extract_think"]["a/clock"] == {"n": 2, "correct": 1, "accuracy": 0.5}
    assert acc["direct"]["all"] == {"n": 3, "correct": 1, "accuracy": pytest.approx(1 / 3)}
    md = markdown(columns, acc)
    assert "| extract_think | 50.0 | 100.0 | 66.7 |" in md and "a/clock (n=2)" in md
    # one source: the columns are the categories alone
    assert table([dict(r, source="a") for r in rows], ["direct"])[0] == ["clock", "all"]


class Scripted:
    """A generator that replays fixed replies (for the bookkeeping of `think`); one
    character is one token."""

    def __init__(self, first, second, vocab=()):
        self.calls, self.replies, self.vocab = [], [first, second], set(vocab)

    def encode(self, text):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(map(chr, ids))

    def complete_ids(self, prompts, max_tokens, bad_words=()):
        self.calls.append(([self.decode(p) for p in prompts], max_tokens))
        return [Completion(text, tuple(self.encode(text)), done) for text, done in self.replies[len(self.calls) - 1][: len(prompts)]]

    def has_token(self, token):
        return token in self.vocab


def test_think_continues_forces_or_leaves_a_reply_by_how_it_ended():
    gen = Scripted([("done.\nAnswer: 3", True), ("Still counting", False), ("Counted.\nAnswer:", False)],
                   [(" 7", True), (" 4", True)])
    a, b, c = think(gen, ["P0", "P1", "P2"], budget=17, answer_tokens=4)
    assert a.text == "done.\nAnswer: 3" and not a.forced and a.thinking_tokens == 15 and a.answer_tokens == 0
    assert b.text == "Still counting\nAnswer: 7" and b.forced and b.answer_tokens == 2  # the end forced
    assert c.text == "Counted.\nAnswer: 4" and not c.forced  # thinking ended in time; only the answer was cut
    assert gen.calls[1] == (["P1Still counting\nAnswer:", "P2Counted.\nAnswer:"], 4)
    thinking = Scripted([("<think>so many", False)], [("Answer: 2", True)], vocab=["</think>"])
    (t,) = think(thinking, ["P"], budget=14, answer_tokens=9)
    assert t.text == "<think>so many\n</think>\n\nAnswer: 2" and t.forced


def _generator(path, batch_size=4):
    return TransformersGenerator(TeacherConfig(backend="transformers", model=str(path), batch_size=batch_size))


def test_the_budget_is_forced_on_a_real_model(tiny_llama):
    gen = _generator(tiny_llama)
    prompts = [gen.render(chat(q, False)) for q in ("How many beakers?", "Is the sign red?")]
    free = gen.complete([p for p in prompts], [[], []], 9)
    for t, f in zip(think(gen, prompts, budget=6, answer_tokens=3), free):
        assert t.thinking_tokens == 6 and t.forced and t.answer_tokens == 3  # a random model never ends by itself
        assert t.text.startswith(gen.decode(f.ids[:6]) + "\nAnswer:")  # its own 6 tokens, then the forced end
        assert t.text != f.text


def test_blocked_words_never_appear(tiny_llama):
    gen = _generator(tiny_llama)
    prompt = [gen.render(chat("Describe the image, then answer: how many beakers?", False))]
    free = gen.complete(prompt, [[]], 24)[0].text
    words = [w for w in free.split() if w.isalpha() and len(w) > 1]
    assert words, free
    blocked = gen.complete(prompt, [[]], 24, bad_words=words[:2])[0].text
    assert blocked != free
    ids = gen.tokenizer.encode(blocked, add_special_tokens=False)
    for variant in word_variants(words[:2]):
        seq = gen.tokenizer.encode(variant, add_special_tokens=False)
        assert not any(ids[i : i + len(seq)] == seq for i in range(len(ids))), (variant, blocked)


def _eval_config(tmp_path, vlm, lm, backend="transformers", **kw):
    from pipelines.config import build

    model = {"backend": backend, "batch_size": 8}
    if backend == "vllm":
        model["vllm"] = {"dtype": "float32", "max_model_len": 512, "gpu_memory_utilization": 0.1}
    return build(EvalConfig, {
        "heldout": [{"kind": "synthetic", "name": "scenes", "synthetic": {"num_records": 6, "split": "heldout", "image_size": 96, "seed": 3}},
                    {"kind": "llava", "name": "photos", "llava": {"json": str(tmp_path / "llava" / "eval.json")}}],
        "perception": {**model, "model": str(vlm)}, "reasoner": {**model, "model": str(lm)},
        "extraction_tokens": 12, "direct_tokens": 4, "thinking_budget": 8, "answer_tokens": 3,
        "out": str(tmp_path / "eval"), "progress": False, **kw})


@pytest.fixture
def llava_set(tmp_path):
    """Two usable LLaVA records and one whose image is broken."""
    from pipelines.config.recipe import SyntheticSource
    from pipelines.sources.synthetic import make_record

    folder = tmp_path / "llava"
    folder.mkdir()
    entries = []
    for i in range(2):
        record = make_record(i, SyntheticSource(image_size=96, split="heldout", seed=9))
        (folder / f"{i}.png").write_bytes(record.images[0].bytes)
        turn = record.turns[0]
        question = turn.question + "".join(f"\n{chr(65 + j)}. {c}" for j, c in enumerate(turn.choices))
        entries.append({"id": str(i), "image": f"{i}.png", "conversations": [
            {"from": "human", "value": "<image>\n" + question}, {"from": "gpt", "value": turn.answer}]})
    (folder / "broken.png").write_bytes(b"not a png")
    entries.append({"id": "x", "image": "broken.png", "conversations": [
        {"from": "human", "value": "<image>\nWhat is it?"}, {"from": "gpt", "value": "a cat"}]})
    (folder / "eval.json").write_text(json.dumps(entries))
    return folder


def test_a_whole_evaluation_on_transformers(tmp_path, tiny_idefics3, tiny_llama, llava_set):
    summary = evaluate(_eval_config(tmp_path, tiny_idefics3, tiny_llama))
    rows = [json.loads(line) for line in open(tmp_path / "eval" / "predictions.jsonl")]
    assert summary["skipped_records"] == {"image_unsupported": 1}  # counted, with its reason
    assert summary["records"] == 8 and len(rows) == 3 * summary["items"]
    assert {r["system"] for r in rows} == {"extract_think", "caption_think", "direct"}
    assert {r["source"] for r in rows} == {"scenes", "photos"}
    # the oracle writes focus phrases only for synthetic scenes: the photos' extract_think rows
    # fail with the reason, scored wrong, counted; the other systems do not need a focus
    failed = [r for r in rows if r.get("failed")]
    assert {(r["source"], r["system"], r["failed"]) for r in failed} == {("photos", "extract_think", "focus_teacher_error")}
    assert summary["failed"] == len(failed) == 2 and not any(r["correct"] for r in failed)
    for r in rows:
        if r.get("failed"):
            continue
        if r["system"] == "extract_think":
            assert r["focus"] and r["stage1"] is not None and r["thinking_tokens"] <= 8
        if r["system"] != "direct":
            assert r["forced"] == (r["thinking_tokens"] == 8 and "Answer:" in r["reply"])
    for r in rows:
        turn = Turn(r["question"], r["gold"], tuple(r["choices"]), r["answer_type"])
        assert r["correct"] == score(r["reply"], turn, r["system"] == "direct")[1]
    cells = summary["accuracy"]["extract_think"]
    assert cells["all"]["n"] == summary["items"] == sum(cells[c]["n"] for c in summary["columns"][:-1])
    assert cells["all"]["correct"] == sum(r["correct"] for r in rows if r["system"] == "extract_think")
    assert (tmp_path / "eval" / "results.md").read_text().startswith("| system |")


@pytest.mark.slow
def test_the_same_evaluation_on_the_vllm_engine(tmp_path, tiny_idefics3, tiny_llama, llava_set):
    """Same prompts, same greedy replies, same budget forcing and word blocking: the two
    backends agree row for row. The blocked word is one this model writes when free to."""
    pytest.importorskip("vllm")
    runs = {}
    for backend in ("transformers", "vllm"):
        evaluate(_eval_config(tmp_path, tiny_idefics3, tiny_llama, backend=backend, out=str(tmp_path / backend),
                              reflexive_words=["hite"]))
        runs[backend] = [json.loads(line) for line in open(tmp_path / backend / "predictions.jsonl")]
    assert runs["transformers"] == runs["vllm"]
    replies = [r["reply"] for r in runs["vllm"] if r["system"] != "direct" and r["reply"]]
    assert replies and not any(re.search(r"(?<![a-z])hite", r, re.IGNORECASE) for r in replies)  # "white" is another word
    unblocked = evaluate(_eval_config(tmp_path, tiny_idefics3, tiny_llama, backend="transformers", out=str(tmp_path / "free"),
                                      block_reflexive=False, systems=["caption_think"]))
    free = [json.loads(line)["reply"] for line in open(tmp_path / "free" / "predictions.jsonl")]
    assert unblocked["items"] and any(re.search(r"(?<![a-z])hite", r) for r in free)  # what was blocked above


def test_the_bundled_mmstar_evaluation_reads_its_schema_and_tables_by_category(tmp_path, tiny_idefics3, tiny_llama):
    """recipes/train/eval-mmstar.yaml, its Hub path pointed at a local MMStar-shaped set: the
    inline options and letter answers become choice turns, the table's columns are MMStar's
    categories, and every prediction carries the row's metadata."""
    from importlib import resources

    from pipelines.config import load_yaml
    from tests.sources.hub_schemas import mmstar

    where, expected = mmstar(tmp_path)
    cfg = load_yaml(EvalConfig, resources.files("recipes") / "train" / "eval-mmstar.yaml", [
        f"heldout.0.hf.path={where['path']}", "heldout.0.hf.split=train", f"out={tmp_path / 'eval'}", "progress=false",
        f"perception.model={tiny_idefics3}", "perception.backend=transformers", f"reasoner.model={tiny_llama}",
        "reasoner.backend=transformers", "focus.mode=question", "extraction_tokens=8", "direct_tokens=4",
        "thinking_budget=6", "answer_tokens=3"])
    summary = evaluate(cfg)
    rows = [json.loads(line) for line in open(tmp_path / "eval" / "predictions.jsonl")]
    assert summary["records"] == 3 and summary["columns"] == ["coarse perception", "instance reasoning", "math", "all"]
    golds = {r["question"]: (r["gold"], tuple(r["choices"])) for r in rows}
    assert golds == {q: (gold, choices) for [(q, choices, gold, _, _)] in expected}
    assert {r["meta"]["l2_category"] for r in rows} == {"image scene and topic", "single-instance reasoning",
                                                       "numeric commonsense and calculation"}


def test_the_reasoner_is_evaluated_on_the_prompt_it_was_trained_on(tmp_path, tiny_idefics3, tiny_llama, monkeypatch):
    """A recipe with its own think template: the published prompt column, the template
    published beside the data, the copy train_min keeps beside the model and the prompts
    the evaluation sends the reasoner are all that template."""

    import train_min.evaluate as ev
    from pipelines.commands.run import run
    from pipelines.config.recipe import read_recipe
    from tests.train.runs import run_config
    from train_min.train import train

    own = "MY OWN PROMPT\n{{ extraction }}\nQ: {{ question }}{% for c in choices %}\n{{ c }}{% endfor %}\nEnd with Answer: X."
    template = tmp_path / "my_think.jinja"
    template.write_text(own)
    data = run(read_recipe("quickstart", ["sources.0.synthetic.num_records=12", "sources.0.synthetic.image_size=64",
                                          "teacher.oracle.error_rate=0", f"stages.think.template={template}",
                                          f"output.dir={tmp_path / 'data'}", "cache.dir=null"])).out_dir
    rows = published_rows(str(data), "reasoning")
    assert len(rows) and all(p.startswith("MY OWN PROMPT") for p in rows["prompt"])
    assert (data / "prompts" / "think.jinja").read_text() == own
    train(run_config(tmp_path, tiny_llama, data, "reasoner", task="reasoner", steps=1, max_length=512))
    model = tmp_path / "reasoner" / "final"
    assert (model / "prompts" / "think.jinja").read_text() == own
    sent = []
    real = ev.think
    monkeypatch.setattr(ev, "think", lambda gen, texts, *a, **k: sent.extend(texts) or real(gen, texts, *a, **k))
    heldout = [{"kind": "synthetic", "name": "scenes", "synthetic": {"num_records": 3, "split": "heldout", "image_size": 96, "seed": 3}}]
    ev.evaluate(_eval_config(tmp_path, tiny_idefics3, model, systems=["extract_think"], heldout=heldout))
    assert sent and all("MY OWN PROMPT" in t and "You cannot see the image" not in t for t in sent)
