"""Answer parsing and matching, table-driven: every row is a case a real reasoner writes."""

import pytest

from pipelines.core.answers import answer_matches, canonical_answer, normalise_text, parse_final_answer, parse_number

PARSE = [
    # the last Answer: line wins
    ("Some reasoning.\nAnswer: 4", "4"),
    ("Answer: A\nmore thought\nAnswer: B", "B"),
    ("answer : yes", "yes"),
    ("**Answer:** C", "C"),
    ("**Answer**: C", "C"),
    ("Final answer: 12", "12"),
    ("FINAL ANSWER: red", "red"),
    ("Answer：B", "B"),
    ("Thinking...\nAnswer: The left beaker.", "The left beaker"),
    ("Answer: \"EXIT\"", "EXIT"),
    ("Answer: `7`", "7"),
    ("Answer:\nB", "B"),
    ("Answer:\n\n  yes  ", "yes"),
    ("So, Answer: 3:45", "3:45"),
    ("Answer: $12.50", "$12.50"),
    ("Answer: 1.5", "1.5"),
    ("The line says Answer: 5 but wait.\nAnswer: 6", "6"),
    # think blocks never answer
    ("<think>Answer: A</think>\nAnswer: B", "B"),
    ("<think>maybe Answer: A</think>\nThe answer is C.", "C"),
    ("<think>Answer: A ... still thinking", None),
    # fallbacks: boxed, then "the answer is"
    ("We get \\boxed{42}.", "42"),
    ("first \\boxed{1} then \\boxed{2}", "2"),
    ("Answer: \\boxed{B}", "B"),
    ("So the final answer is 12.", "12"),
    ("The correct answer is B.", "B"),
    ("I think the answer would be yes.", "yes"),
    ("the answer is red. Later, the answer is blue.", "blue"),
    ("The answer is (C) the right beaker", "(C) the right beaker"),
    # unparsable
    # no label: the last line, as the paper's parser (pleasantries and closing questions skipped)
    ("I cannot tell.", "I cannot tell"),
    ("The couch is red.", "The couch is red"),
    ("B", "B"),
    ("(B) blue", "(B) blue"),
    ("There are **2 objects left**.\n\nIs there anything else I can help you with?", "There are 2 objects left"),
    ("So it is 5.</s>", "So it is 5"),
    ("It is 5.\nI hope this helps. Let me know if you have questions.", "It is 5"),
    ("(A) red\n(B) blue", None),
    # every markdown dress of the label
    ("*Answer*: 3", "3"),
    ("### Answer: 3", "3"),
    ("__Answer__: 3", "3"),
    ("**Final Answer**: **3**", "3"),
    ("Answer: **B**", "B"),
    ("", None),
    (None, None),
    ("Answer:", None),
    ("Answer: **", None),
]


@pytest.mark.parametrize("text, expected", PARSE)
def test_parse_final_answer(text, expected):
    assert parse_final_answer(text) == expected


CH = ("red", "blue", "the left beaker", "green")
ART = ("a cat", "a dog", "a bird")
NESTED = ("red", "dark red", "blue")

MATCH = [
    # multiple choice: letters in every surface form
    ("B", "B", "choice", CH, True),
    ("(B)", "B", "choice", CH, True),
    ("b)", "B", "choice", CH, True),
    ("(b)", "B", "choice", CH, True),
    ("B.", "B", "choice", CH, True),
    ("b.", "B", "choice", CH, True),
    ("B)", "B", "choice", CH, True),
    ("[B]", "B", "choice", CH, True),
    ("B:", "B", "choice", CH, True),
    ("**B**", "B", "choice", CH, True),
    ("B. blue", "B", "choice", CH, True),
    ("B) blue", "B", "choice", CH, True),
    ("(B) blue", "B", "choice", CH, True),
    ("B - blue", "B", "choice", CH, True),
    ("Answer: B", "B", "choice", CH, True),
    ("The answer is B) blue", "B", "choice", CH, True),
    ("The answer is (B).", "B", "choice", CH, True),
    ("Option B", "B", "choice", CH, True),
    ("option b", "B", "choice", CH, True),
    ("Choice (B)", "B", "choice", CH, True),
    ("\\boxed{B}", "B", "choice", CH, True),
    ("b", "B", "choice", CH, True),
    ("B", "(B)", "choice", CH, True),
    ("C", "c", "choice", CH, True),
    # option text instead of the letter
    ("blue", "B", "choice", CH, True),
    ("Blue.", "B", "choice", CH, True),
    ("The left beaker", "C", "choice", CH, True),
    ("left beaker", "C", "choice", CH, True),
    ("It is blue", "B", "choice", CH, True),
    ("the colour is blue", "B", "choice", CH, True),
    ("bleu", "B", "choice", CH, False),
    ("the left beakr", "C", "choice", CH, True),
    ("dark red", "B", "choice", NESTED, True),
    ("the dark red one", "B", "choice", NESTED, True),
    ("red", "A", "choice", NESTED, True),
    ("A dog", "B", "choice", ART, True),
    ("a dog", "B", "choice", ART, True),
    ("A. a cat", "A", "choice", ART, True),
    ("A", "A", "choice", ART, True),
    # wrong, ambiguous or contradictory
    ("A", "B", "choice", CH, False),
    ("E", "E", "choice", CH, False),
    ("(F)", "B", "choice", CH, False),
    ("B) green", "B", "choice", CH, False),
    ("red or blue", "B", "choice", CH, False),
    ("purple", "B", "choice", CH, False),
    ("", "B", "choice", CH, False),
    (None, "B", "choice", CH, False),
    ("Both", "B", "choice", CH, False),
    ("Beaker", "C", "choice", CH, False),
    # yes / no
    ("Yes.", "yes", "yesno", (), True),
    ("yes", "Yes", "yesno", (), True),
    ("YES", "yes", "yesno", (), True),
    ("Yeah", "yes", "yesno", (), True),
    ("Yep, there are more.", "yes", "yesno", (), True),
    ("True", "yes", "yesno", (), True),
    ("Correct", "yes", "yesno", (), True),
    ("Answer: Yes", "yes", "yesno", (), True),
    ("**Yes**", "yes", "yesno", (), True),
    ("It is yes", "yes", "yesno", (), True),
    ("yes", "True", "yesno", (), True),
    ("no, it is not", "no", "yesno", (), True),
    ("No.", "no", "yesno", (), True),
    ("Nope", "no", "yesno", (), True),
    ("False", "no", "yesno", (), True),
    ("Not really", "no", "yesno", (), True),
    ("It is not", "no", "yesno", (), True),
    ("There is none", "no", "yesno", (), True),
    ("no", "False", "yesno", (), True),
    ("yes", "no", "yesno", (), False),
    ("No", "yes", "yesno", (), False),
    ("maybe", "yes", "yesno", (), False),
    ("It depends", "no", "yesno", (), False),
    ("", "yes", "yesno", (), False),
    ("the bar is taller", "yes", "yesno", (), False),
    # numbers
    ("4", "4", "number", (), True),
    ("four", "4", "number", (), True),
    ("Four.", "4", "number", (), True),
    ("4 particles", "4", "number", (), True),
    ("There are 4 particles.", "4", "number", (), True),
    ("1,200", "1200", "number", (), True),
    ("1200", "1,200", "number", (), True),
    ("12,345,678", "12345678", "number", (), True),
    ("$12.50", "12.5", "number", (), True),
    ("12.50", "$12.50", "number", (), True),
    ("12.5 dollars", "12.50", "number", (), True),
    ("45%", "45", "number", (), True),
    ("-3", "-3", "number", (), True),
    ("\u22123", "-3", "number", (), True),
    ("+7", "7", "number", (), True),
    (".5", "0.5", "number", (), True),
    ("3/4", "0.75", "number", (), True),
    ("twenty-one", "21", "number", (), True),
    ("twenty one", "21", "number", (), True),
    ("one hundred and five", "105", "number", (), True),
    ("three thousand two hundred", "3200", "number", (), True),
    ("a dozen", "12", "number", (), True),
    ("two million", "2000000", "number", (), True),
    ("zero", "0", "number", (), True),
    ("none", "0", "number", (), True),
    ("No particles", "0", "number", (), True),
    ("Answer: 7", "7", "number", (), True),
    ("\\boxed{7}", "7", "number", (), True),
    ("7.0", "7", "number", (), True),
    ("It shows 7", "7", "number", (), True),
    ("eleven", "11", "number", (), True),
    ("5", "4", "number", (), False),
    ("unknown", "4", "number", (), False),
    ("40", "4", "number", (), False),
    ("1,200", "120", "number", (), False),
    ("$12.05", "12.50", "number", (), False),
    ("three", "4", "number", (), False),
    ("", "4", "number", (), False),
    ("some", "4", "number", (), False),
    # VQA-style short text
    ("EXIT", "EXIT", "text", (), True),
    ("exit", "EXIT", "text", (), True),
    ("the octagon", "octagon", "text", (), True),
    ("Octagon.", "octagon", "text", (), True),
    ("An octagon", "octagon", "text", (), True),
    ("It is an octagon", "octagon", "text", (), True),
    ("It's an octagon.", "octagon", "text", (), True),
    ("\"STOP\"", "stop", "text", (), True),
    ("**Library**", "library", "text", (), True),
    ("libary", "LIBRARY", "text", (), True),
    ("two", "2", "text", (), True),
    ("3:45", "3:45", "text", (), True),
    ("3:45.", "3:45", "text", (), True),
    ("red bus", "the red bus", "text", (), True),
    ("Red, bus!", "red bus", "text", (), True),
    ("don't know", "dont know", "text", (), True),
    ("New York", "new york", "text", (), True),
    ("Answer: circle", "circle", "text", (), True),
    ("The answer is circle", "circle", "text", (), True),
    ("coffee mug", "coffee mugs", "text", (), True),
    ("Cafe Luna", "Cafe Luna", "text", (), True),
    ("circle", "square", "text", (), False),
    ("B", "A", "text", (), False),
    ("3:45", "3:15", "text", (), False),
    ("4:45", "3:45", "text", (), False),
    ("not red", "red", "text", (), False),
    ("red", "blue", "text", (), False),
    ("bread", "tea", "text", (), False),
    (None, "x", "text", (), False),
    ("", "x", "text", (), False),
    ("the", "octagon", "text", (), False),
    # v2, from real answers: the gold inside a longer answer, order-free, digits exact
    ("Two people", "two", "text", (), True),
    ("Red coat", "red", "text", (), True),
    ("The couch is red.", "red", "text", (), True),
    ("The couch is not red.", "red", "text", (), False),
    ("white and red", "red and white", "text", (), True),
    ("oranges", "orange", "text", (), True),
    ("open 12 hours", "open 24 hours", "text", (), False),
    ("2019-05-21", "2019-05-12", "text", (), False),
    ("2019-05-12", "2019-05-12", "text", (), True),
    ("555-0134", "555-0134", "number", (), True),
    ("555-0199", "555-0134", "number", (), False),
    ("007", "007", "number", (), True),
    ("7", "007", "number", (), False),
    ("14.80€ in total", "14.8", "text", (), True),
    ("29 + 36 = 65", "65", "number", (), True),
    ("29 + 36 = 65", "29", "number", (), False),
    ("the median is the middle value, which is 5", "5", "number", (), True),
    ("There are **2 objects left**", "2", "number", (), True),
    ("x is 13.7", "13.6 <OR> 13.7", "text", (), True),
    ("x is 13.9", "13.6 <OR> 13.7", "text", (), False),
    ("an oven and a dishwasher", "oven <AND> dishwasher", "text", (), True),
    ("an oven", "oven <AND> dishwasher", "text", (), False),
    ("x can be -1 or -5", "-1 <AND> -5", "text", (), True),
    ("(B) No", "no", "yesno", (), True),
    ("The answer is (B), no", "no", "yesno", (), True),
    ("The chart is clear. So, yes, it is the largest.", "yes", "yesno", (), True),
    ("Purple is not the smoothest colour.", "no", "yesno", (), True),
    ("No, the line is straight.", "no", "yesno", (), True),
]


@pytest.mark.parametrize("pred, gold, kind, choices, ok", MATCH)
def test_answer_matches(pred, gold, kind, choices, ok):
    assert answer_matches(pred, gold, kind, choices) is ok


def test_vqa_accuracy_counts_annotators():
    from pipelines.core.answers import vqa_accuracy

    annotators = ["red", "red", "Red", "dark red", "red", "maroon", "red", "red", "red", "red"]
    assert vqa_accuracy("Red.", annotators) == 1.0
    assert vqa_accuracy("dark red", annotators) == pytest.approx(1 / 3)
    assert vqa_accuracy("blue", annotators) == 0.0
    assert vqa_accuracy(None, annotators) == 0.0


def test_any_listed_right_answer_reaches_the_gold():
    from filters.correctness import reaches_gold
    from pipelines.core.record import Turn

    docvqa = Turn("What is the ratio?", "1/8", (), "text", {"alternatives": ["1/8", "one eighth"]})
    assert reaches_gold("one eighth", docvqa) and reaches_gold("1/8", docvqa) and not reaches_gold("1/4", docvqa)
    annotated = Turn("What colour?", "red", (), "text", {"answers": ["red"] * 7 + ["maroon"] * 3})
    assert reaches_gold("maroon", annotated) and not reaches_gold("maroon", annotated, min_vqa_accuracy=1.01)


def test_the_table_is_big_enough():
    assert len(PARSE) + len(MATCH) >= 150


@pytest.mark.parametrize("text, value", [
    ("4", 4.0), ("-2.5", -2.5), ("1,234.5", 1234.5), ("7/2", 3.5), ("nine", 9.0), ("forty two", 42.0),
    ("one thousand", 1000.0), ("x", None), ("no", 0.0), ("1/0", None),
])
def test_parse_number(text, value):
    assert parse_number(text) == value


def test_number_tolerance_is_relative():
    assert answer_matches("103", "100", "number", tolerance=0.05)
    assert not answer_matches("106", "100", "number", tolerance=0.05)
    assert answer_matches("0", "0", "number", tolerance=0.05)


def test_fuzzy_threshold_is_the_knob():
    assert answer_matches("libary", "library", "text", fuzzy_threshold=90)
    assert not answer_matches("libary", "library", "text", fuzzy_threshold=99)


def test_normalise_text_drops_case_articles_and_punctuation():
    assert normalise_text("The  Red, Bus!") == "red bus"
    assert normalise_text("It's 1,200.5 or three") == "it is 1200.5 or 3"


def test_canonical_answers_are_votes():
    assert canonical_answer("(b)", "choice", CH) == canonical_answer("blue", "choice", CH) == "B"
    assert canonical_answer("Nope", "yesno") == "no"
    assert canonical_answer("twelve", "number") == canonical_answer("12.0", "number") == 12.0
    assert canonical_answer("The Octagon.", "text") == "octagon"
    assert canonical_answer("  ", "text") is None


def test_answer_correct_takes_an_answer_enough_annotators_gave():
    from dataclasses import replace

    from filters.correctness import answer_correct
    from pipelines.config.recipe import SyntheticSource
    from pipelines.core.record import TeacherOutput, ThinkSample, Turn
    from pipelines.sources.synthetic import make_record

    annotators = ["red", "red", "red", "red", "maroon", "maroon", "maroon", "orange", "red", "red"]
    turn = Turn("What colour is the car?", "red", (), "text", {"answers": annotators})
    record = make_record(0, SyntheticSource(image_size=64))

    def with_answer(answer, t=turn):
        return replace(record, turns=(t,), reasoning=((ThinkSample(TeacherOutput(f"Answer: {answer}", "stop"), answer),),))

    assert answer_correct(with_answer("Red.")).keep
    assert answer_correct(with_answer("maroon")).keep  # 3 annotators: full VQA credit
    assert not answer_correct(with_answer("orange")).keep  # 1 of 3 needed
    assert answer_correct(with_answer("orange"), min_vqa_accuracy=0.3).keep
    assert not answer_correct(with_answer("maroon", Turn("What colour is the car?", "red", (), "text"))).keep  # no annotators
