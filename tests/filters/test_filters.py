from filters.correctness import answer_correct
from filters.sufficiency import sufficiency
from pipelines.core.record import ImageData, Record, TeacherOutput, ThinkSample, Turn


def _record(turn_answers: list[list[str | None]], golds=None) -> Record:
    img = ImageData.from_bytes(b"x", 1, 1, "PNG")
    golds = golds or ["4"] * len(turn_answers)
    turns = tuple(Turn(f"Q{i}?", g, (), "number") for i, g in enumerate(golds))
    reasoning = tuple(tuple(ThinkSample(TeacherOutput(f"Answer: {a}", "stop"), a) for a in answers) for answers in turn_answers)
    return Record("id", "s", "l", (img,), turns).add(reasoning=reasoning)


def test_correct_when_every_turn_has_a_correct_trace():
    v = answer_correct(_record([["4", "5"], ["4"]]))
    assert v.keep and v.score == 1.0


def test_wrong_and_unparsable_are_told_apart():
    assert answer_correct(_record([["5", "6"]])).reason == "answer_wrong"
    assert answer_correct(_record([[None, None]])).reason == "answer_unparsable"
    v = answer_correct(_record([["4"], ["3"]]))
    assert not v.keep and v.score == 0.5


def test_sufficiency_is_the_share_of_samples_reaching_gold():
    v = sufficiency(_record([["4", "5", "5"]]), min_ratio=0.5)
    assert not v.keep and v.reason == "extraction_insufficient" and abs(v.score - 1 / 3) < 1e-9
    assert sufficiency(_record([["4", "4", "5"]]), min_ratio=0.5).keep
    # the two filters disagree exactly where they should: a lucky single correct trace
    assert answer_correct(_record([["4", "5", "5"]])).keep


def test_records_without_reasoning_are_rejected():
    img = ImageData.from_bytes(b"x", 1, 1, "PNG")
    bare = Record("id", "s", "l", (img,), (Turn("Q?", "4"),))
    assert answer_correct(bare).reason == "answer_missing"
    assert sufficiency(bare).reason == "extraction_insufficient"


def test_the_published_trace_is_the_one_the_filter_counted_correct():
    """With `min_vqa_accuracy: 0.3`, "orange" (1 of 10 annotators) is correct; the first
    trace ("blue", cut at max_tokens) is not. The filters keep the record for the second
    trace, degeneration checks that trace, and that trace is the one published."""
    from dataclasses import replace

    from pipelines.beam.filtering import _Apply
    from pipelines.config.recipe import read_recipe
    from pipelines.core.record import TeacherOutput, ThinkSample, Turn
    from pipelines.publishing.rows import Layout
    from pipelines.sources.synthetic import make_record

    recipe = read_recipe("quickstart", ["filters=[{name: answer_correct, params: {min_vqa_accuracy: 0.3}}, {name: degeneration}]"])
    annotators = ["red"] * 6 + ["maroon"] * 3 + ["orange"]
    turn = Turn("What colour is the car?", "red", (), "text", {"answers": annotators})
    samples = (ThinkSample(TeacherOutput("The car is blue, as far as I can tell from " * 3, "length"), "blue"),
               ThinkSample(TeacherOutput("The car has a warm orange tone in this light.\nAnswer: orange", "stop"), "orange"))
    record = make_record(0, recipe.sources[0].synthetic)
    record = replace(record, turns=(turn,), reasoning=(samples,), extractions=(TeacherOutput("A car in the street, parked.", "stop"),))
    [out] = _Apply(recipe.filters, split=False).process(record)
    assert out.status == "ok", (out.reason, out.detail)
    [row] = Layout.of(recipe).reasoning_rows(out)
    assert row["reasoning"].endswith("Answer: orange")
