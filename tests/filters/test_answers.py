import pytest

from filters.answers import answer_matches, normalise_text, parse_final_answer


@pytest.mark.parametrize("text, expected", [
    ("Some reasoning.\nAnswer: 4", "4"),
    ("Answer: A\nmore thought\nAnswer: B", "B"),
    ("answer : yes", "yes"),
    ("**Answer:** C", "C"),
    ("So the final answer is 12.", "12"),
    ("I cannot tell.", None),
    ("The description stops here and", None),
    ("", None),
])
def test_parse_final_answer(text, expected):
    assert parse_final_answer(text) == expected


CHOICES = ("red", "blue", "the left beaker", "green")


@pytest.mark.parametrize("pred, gold, kind, choices, ok", [
    ("B", "B", "choice", CHOICES, True),
    ("(B)", "B", "choice", CHOICES, True),
    ("b)", "B", "choice", CHOICES, True),
    ("B. blue", "B", "choice", CHOICES, True),
    ("blue", "B", "choice", CHOICES, True),
    ("The left beaker", "C", "choice", CHOICES, True),
    ("A", "B", "choice", CHOICES, False),
    ("E", "E", "choice", CHOICES, False),
    ("Yes.", "yes", "yesno", (), True),
    ("no, it is not", "no", "yesno", (), True),
    ("yes", "no", "yesno", (), False),
    ("4", "4", "number", (), True),
    ("four", "4", "number", (), True),
    ("4 particles", "4", "number", (), True),
    ("1,200", "1200", "number", (), True),
    ("5", "4", "number", (), False),
    ("unknown", "4", "number", (), False),
    ("EXIT", "EXIT", "text", (), True),
    ("the octagon", "octagon", "text", (), True),
    ("Octagon.", "octagon", "text", (), True),
    ("libary", "LIBRARY", "text", (), True),
    ("circle", "square", "text", (), False),
    (None, "x", "text", (), False),
    ("", "x", "text", (), False),
])
def test_answer_matches(pred, gold, kind, choices, ok):
    assert answer_matches(pred, gold, kind, choices) is ok


def test_number_tolerance_is_relative():
    assert answer_matches("103", "100", "number", tolerance=0.05)
    assert not answer_matches("106", "100", "number", tolerance=0.05)


def test_normalise_text_drops_case_articles_and_punctuation():
    assert normalise_text("The  Red, Bus!") == "red bus"
