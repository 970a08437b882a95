"""Record checks and LLaVA conversation parsing, case by case."""

import pytest

from pipelines.source_config import ChecksConfig
from pipelines.sources.checks import conversation_turns, make_turn
from pipelines.sources.images import Problem

C = ChecksConfig(max_question_chars=200, max_answer_chars=50, max_turns=4)


def test_options_written_into_a_question_become_choices_and_the_instruction_moves_to_meta():
    t = make_turn("What colour is the bus?\nA. red\nB. blue\nC. green\nAnswer with the option's letter from the given choices directly.", "B", None, C)
    assert (t.question, t.choices, t.answer, t.answer_type) == ("What colour is the bus?", ("red", "blue", "green"), "B", "choice")
    assert t.meta["instruction"].startswith("Answer with the option's letter")


@pytest.mark.parametrize("answer", ["B", "(B)", "b", "B.", "blue", "Blue"])
def test_a_choice_answer_is_stored_as_its_letter(answer):
    assert make_turn("Which?", answer, ["red", "blue"], C).answer == "B"


def test_answer_types_are_inferred():
    assert make_turn("Is it raining?", "Yes", None, C).answer_type == "yesno"
    assert make_turn("Is it raining?", "Yes", None, C).answer == "yes"
    assert make_turn("How many?", 3, None, C).answer_type == "number"
    assert make_turn("How many?", "1,200", None, C).answer_type == "number"
    assert make_turn("What is written?", "STOP", None, C).answer_type == "text"


def test_a_list_of_annotator_answers_stands_for_its_most_common_member():
    assert make_turn("What animal?", ["dog", "cat", "dog", "dog "], None, C).answer == "dog"


def test_the_single_word_instruction_is_removed_from_a_plain_question():
    t = make_turn("What is on the table?\nAnswer the question using a single word or phrase.", "cup", None, C)
    assert t.question == "What is on the table?" and t.meta["instruction"]


@pytest.mark.parametrize("question, answer, choices, reason", [
    (None, "a", None, "question_missing"),
    ("  ", "a", None, "question_empty"),
    ("Q?", None, None, "answer_missing"),
    ("Q?", "", None, "answer_empty"),
    ("Q" * 201, "a", None, "question_too_long"),
    ("Q?", "a" * 51, None, "answer_too_long"),
    ({"text": "Q?"}, "a", None, "field_wrong_type"),
    ("Q?", True, None, "field_wrong_type"),
    ("Q?", "purple", ["red", "blue"], "choices_answer_absent"),
    ("Q?", "D", ["red", "blue"], "choices_answer_absent"),
    ("Q?", "red", "red, blue", "choices_invalid"),
    ("Q?", "red", ["red"], "choices_invalid"),
    ("Q?", "red", ["red", "Red"], "choices_invalid"),
])
def test_each_bad_field_has_a_named_reason(question, answer, choices, reason):
    with pytest.raises(Problem) as e:
        make_turn(question, answer, choices, C)
    assert e.value.reason == reason


def test_a_multi_turn_conversation_gives_one_turn_per_pair_and_counts_placeholders():
    conv = [
        {"from": "human", "value": "<image>\nWhat is the man holding?"}, {"from": "gpt", "value": "A kite"},
        {"from": "human", "value": "Is it sunny?"}, {"from": "gpt", "value": "Yes"},
    ]
    turns, placeholders = conversation_turns(conv, C)
    assert [(t.question, t.answer, t.answer_type) for t in turns] == [("What is the man holding?", "A kite", "text"), ("Is it sunny?", "yes", "yesno")]
    assert placeholders == 1


@pytest.mark.parametrize("conv, reason", [
    ("human: hi", "conversation_malformed"),
    ([{"from": "human", "value": "Q?"}], "conversation_malformed"),
    ([{"from": "gpt", "value": "A"}, {"from": "human", "value": "Q?"}], "conversation_malformed"),
    ([{"from": "robot", "value": "Q?"}, {"from": "gpt", "value": "A"}], "conversation_malformed"),
    ([{"from": "human", "value": 3}, {"from": "gpt", "value": "A"}], "conversation_malformed"),
    ([], "conversation_empty"),
])
def test_malformed_conversations_are_named(conv, reason):
    with pytest.raises(Problem) as e:
        conversation_turns(conv, C)
    assert e.value.reason == reason


def test_a_row_without_an_image_is_no_image_whatever_else_is_wrong():
    """ScienceQA-shaped rows without an image used to be reported under the answer's problem."""
    from pipelines.source_config import IngestConfig
    from pipelines.sources.ingest import RawItem, to_record

    item = RawItem("sqa", "cc-by-nc-sa-4.0", "row 3", {"question": "Which is a mammal?", "answer": 7, "choices": ["cat", "eel", "ant"]}, (None,))
    record = to_record(item, IngestConfig())
    assert (record.status, record.reason) == ("rejected", "no_image")
