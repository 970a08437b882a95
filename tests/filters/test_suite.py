"""Each filter of the suite on records built by hand: what it keeps, what it rejects, why."""

import pytest

from filters.consistency import extraction_agreement, self_consistency, statement_count, statement_coverage
from filters.quality import degeneration, leakage, repeated_ngrams
from filters.registry import check_params
from pipelines.config import ConfigError
from pipelines.config.recipe import read_recipe
from pipelines.core.record import ImageData, Record, TeacherOutput, ThinkSample, Turn
from pipelines.support.lexical import support
from pipelines.support.text import attribute_pairs, content_tokens, sentences

IMG = ImageData.from_bytes(b"x", 1, 1, "PNG")
SCENE = ("The image shows two glass beakers. The left beaker holds 100 mL of liquid containing 3 red particles "
         "and 2 green particles. The right beaker holds 50 mL of liquid containing no red particles.")


def rec(extractions=(SCENE,), statements=("The left beaker contains 3 red particles.",), turns=None, answers=None,
        focus="the red particles in the left beaker", finish="stop", reasoning_finish="stop"):
    turns = turns or (Turn("How many red particles are in the left beaker?", "3", (), "number"),)
    answers = answers or [["3", "3", "3"]] * len(turns)
    reasoning = tuple(tuple(ThinkSample(TeacherOutput(f"Reading it.\nAnswer: {a}", reasoning_finish), a) for a in row) for row in answers)
    outputs = tuple(TeacherOutput(t, finish if i == 0 else "stop") for i, t in enumerate(extractions))
    return Record("id", "s", "l", (IMG,), tuple(turns)).add(statements=tuple(statements), focus=focus, extractions=outputs, reasoning=reasoning)


# -- support, the shared measure ---------------------------------------------------------

def test_content_tokens_normalise_numbers_labels_and_stems():
    assert content_tokens("The beakers contain three red particles") == ("beaker", "3", "red", "particle")
    assert "labela" in content_tokens("Bar A is blue") and content_tokens("No green particles")[0] == "0"
    assert ("3", "red") in attribute_pairs(content_tokens("3 red particles"))
    assert sentences("One. Two three! Four?\nFive") == ["One.", "Two three!", "Four?", "Five"]


@pytest.mark.parametrize("claim, ok", [
    ("The left beaker contains 3 red particles.", True),
    ("In the left beaker there are three red particles.", True),
    ("The left beaker contains 4 red particles.", False),  # miscount
    ("The left beaker contains 2 red particles and 3 green particles.", False),  # swapped counts
    ("The right beaker contains no red particles.", True),
    ("The right beaker contains 2 red particles.", False),
    ("A black cat sits at the bottom edge of the picture.", False),  # invented
])
def test_support_sees_numbers_and_attributes_not_just_words(claim, ok):
    assert (support(claim, SCENE) >= 0.9) is ok


def test_fuzzy_scorers_are_available_and_blind_to_swaps():
    swapped = "The left beaker holds 100 mL of liquid containing 2 red particles and 3 green particles."
    assert support(swapped, SCENE, "token_set") > 0.9  # what plain fuzzy scores miss ...
    assert support(swapped, SCENE, "recall") < 0.9  # ... attribute pairs catch
    with pytest.raises(ValueError):
        support("x", SCENE, "bogus")


# -- consistency ---------------------------------------------------------------------------

def test_statement_count():
    assert statement_count(rec()).keep
    v = statement_count(rec(statements=("a.", "b.")))
    assert not v.keep and v.reason == "statements_count_mismatch" and "2 statements for 1 questions" in v.detail


def test_statement_coverage_names_the_statement_it_misses():
    assert statement_coverage(rec()).score == 1.0
    v = statement_coverage(rec(statements=("The left beaker contains 5 red particles.",)))
    assert not v.keep and v.reason == "statement_not_covered" and "5 red particles" in v.detail
    assert statement_coverage(rec(statements=("The left beaker contains 5 red particles.",)), min_score=v.score - 0.001).keep  # the knob


def test_extraction_agreement_flags_what_one_sample_alone_says():
    other = "The image shows two glass beakers. The right beaker holds 50 mL of liquid containing no red particles. " \
            "The left beaker holds 100 mL of liquid containing 3 red particles and 2 green particles."
    assert extraction_agreement(rec(extractions=(SCENE, other, other))).score == 1.0
    invented = SCENE + " A black cat sits at the bottom edge of the picture."
    v = extraction_agreement(rec(extractions=(invented, other, other)))
    assert not v.keep and v.reason == "extraction_disagreement" and "black cat" in v.detail and v.score == 3 / 4
    # backed by one of two others is enough (a sample may leave a sentence out) ...
    short = "The image shows two glass beakers."
    assert extraction_agreement(rec(extractions=(SCENE, other, short))).keep
    # ... and a sentence a statement backs is the teacher told, not invented
    told = SCENE + " The left beaker has the higher concentration."
    assert extraction_agreement(rec(extractions=(told, other, other), statements=("The left beaker has the higher concentration.",))).keep
    assert extraction_agreement(rec(extractions=(SCENE,))).reason == "extraction_unconfirmed"
    assert extraction_agreement(rec(extractions=(invented, other, other)), min_agreement=0.7).keep


def test_self_consistency_votes_by_meaning():
    turns = (Turn("Which?", "B", ("red", "blue"), "choice"),)
    assert self_consistency(rec(turns=turns, answers=[["B", "(b)", "blue"]])).score == 1.0
    v = self_consistency(rec(turns=turns, answers=[["A", "red", "B"]]))
    assert not v.keep and v.reason == "majority_wrong" and "gold 'B'" in v.detail
    v = self_consistency(rec(turns=turns, answers=[["B", "B", "A"]]), min_agreement=0.9)
    assert not v.keep and v.reason == "reasoning_inconsistent" and v.score == pytest.approx(2 / 3, abs=1e-3)
    assert self_consistency(rec(turns=turns, answers=[["B", "B", "A"]])).keep  # a minority slip is forgiven
    assert self_consistency(rec(turns=turns, answers=[["B", "A"]])).reason == "majority_wrong"  # a tie decides nothing
    assert self_consistency(rec(answers=[[None, None, "3"]])).reason == "majority_wrong"  # most are unparsable


# -- leakage and degeneration ----------------------------------------------------------------

@pytest.mark.parametrize("tail", ["The answer is 3.", "Answer: 3", "So the answer to the question is 3.",
                                  "This matches option B.", "The question asks about red particles."])
def test_leakage_in_the_extraction(tail):
    v = leakage(rec(extractions=(SCENE + " " + tail,)))
    assert not v.keep and v.reason == "answer_leak" and v.detail.startswith("extraction:")


def test_focus_leak_only_when_no_question_names_the_answer():
    turns = (Turn("Which beaker has more?", "A", ("the left beaker", "the right beaker"), "choice"),)
    v = leakage(rec(turns=turns, focus="the left beaker", answers=[["A"] * 3]))
    assert not v.keep and v.reason == "focus_leak"
    asked = turns + (Turn("How many red particles are in the left beaker?", "3", (), "number"),)
    assert leakage(rec(turns=asked, focus="the left beaker", statements=("a.", "b."), answers=[["A"] * 3, ["3"] * 3])).keep
    assert leakage(rec()).keep


def test_degeneration_reasons():
    assert degeneration(rec()).keep
    assert degeneration(rec(finish="length")).reason == "truncated"
    assert degeneration(rec(reasoning_finish="length")).detail == "reasoning[0] stopped at max_tokens"
    assert degeneration(rec(extractions=("I'm sorry, but I can't help with that image.",))).reason == "refusal"
    loop = SCENE + " The left beaker holds red particles and more." * 6
    v = degeneration(rec(extractions=(loop,)))
    assert v.reason == "repetition" and "times" in v.detail
    assert degeneration(rec(extractions=("Two beakers.",))).reason == "too_short"
    assert degeneration(rec(), max_words=10).reason == "too_long"


def test_lists_are_not_loops():
    listing = "There are 3 blue circles. There are 3 blue squares. There are 3 yellow squares. There are 3 blue triangles."
    assert repeated_ngrams(listing)[0] <= 3 and degeneration(rec(extractions=(listing,))).keep


# -- configuration ------------------------------------------------------------------------

def test_params_are_checked_by_name_type_and_choice():
    assert check_params("statement_coverage", {"min_score": 0.7, "scorer": "partial"}) == []
    assert "unknown param 'min_ratio'" in check_params("leakage", {"min_ratio": 1})[0]
    assert "expected float" in check_params("sufficiency", {"min_ratio": "high"})[0]
    assert "not among" in check_params("decontaminate", {"match": "pixels"})[0]
    assert check_params("decontaminate", {"max_hamming": 6}) == []
    assert "whole number" in check_params("degeneration", {"ngram": 2.5})[0]


def test_yaml_numbers_reach_filters_with_their_types():
    from filters.registry import typed_params

    r = read_recipe("quickstart", ["filters.0.params={ngram: 6, max_ngram_repeats: 2, min_words: 3}"])
    params = typed_params("degeneration", r.filters[0].params)
    assert params == {"ngram": 6, "max_ngram_repeats": 2, "min_words": 3} and all(type(v) is int for v in params.values())
    assert degeneration(rec(), **params).keep


@pytest.mark.parametrize("overrides, message", [
    (["stages.extraction.sampling.n=1"], "extraction_agreement compares extraction samples"),
    (["filters.0.params.bogus=1"], "unknown param 'bogus'"),
    (["filters=[{name: answer_correct}, {name: decontaminate}]", "eval_sets=[{kind: synthetic, name: ev}]"], "list it before 'answer_correct'"),
    (["filters=[{name: decontaminate}]"], "decontaminate needs `eval_sets`"),
    (["eval_sets=[{kind: synthetic, name: ev}]"], "no `decontaminate` filter uses them"),
])
def test_recipes_with_broken_filter_lists_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("[", r"\[")):
        read_recipe("quickstart", overrides)
