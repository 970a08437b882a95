"""Record checks and LLaVA conversation parsing, case by case."""

import pytest

from pipelines.config.source_config import ChecksConfig
from pipelines.sources.checks import conversation_turns, make_turn
from pipelines.sources.image_files import Problem

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
    from pipelines.config.source_config import IngestConfig
    from pipelines.sources.ingest import RawItem, to_record

    item = RawItem("sqa", "cc-by-nc-sa-4.0", "row 3", {"question": "Which is a mammal?", "answer": 7, "choices": ["cat", "eel", "ant"]}, (None,))
    record = to_record(item, IngestConfig())
    assert (record.status, record.reason) == ("rejected", "no_image")


@pytest.mark.parametrize("question, bare, options", [
    ("How many?\nOptions: A: 1, B: 2, C: 3, D: 4", "How many?", ("1", "2", "3", "4")),
    ("Which is true?\nOptions: A: It is red, or pink., B: It is blue.", "Which is true?", ("It is red, or pink.", "It is blue.")),
    ("Which is larger? (A) 3 (B) 5", "Which is larger?", ("3", "5")),
    ("Question: Which is larger?\nChoices:\n(A) 3\n(B) 5\nAnswer with the letter.", "Which is larger?", ("3", "5")),
    ("Which is larger?\nA) 3\nB) 5", "Which is larger?", ("3", "5")),
    ("Context: It rained.\nWhich is wet?\nA. road\nB. roof", "Context: It rained.\nWhich is wet?", ("road", "roof")),
    ("What is A. Lincoln known for?", "What is A. Lincoln known for?", ()),  # one marker is prose
    ("Is (A) bigger than (C)?", "Is (A) bigger than (C)?", ()),  # letters out of order
])
def test_options_written_inline_in_the_common_forms_become_choices(question, bare, options):
    from pipelines.sources.inline_choices import split_options

    q, found, _ = split_options(question)
    assert (q, found) == (bare, options)


@pytest.mark.parametrize("answer, choices, rules, gold", [
    (1, ["1", "2", "4"], {}, "B"),  # an int with choices is an index
    (2, ["x", "y"], {"index_base": 1}, "B"),
    ("2", ["a", "b", "c"], {}, "C"),  # a digit string that is no option's text: an index
    ("2", ["1", "2", "3"], {"answer_is": "text"}, "B"),
    ("2", ["1", "2", "3"], {"answer_is": "index"}, "C"),
    ("Option C", ["a", "b", "c"], {}, "C"),
    ("(B) b", ["a", "b", "c"], {}, "B"),
    ("c", ["a", "b", "c"], {"answer_is": "letter"}, "C"),
])
def test_the_gold_option_is_read_from_index_letter_or_text(answer, choices, rules, gold):
    from pipelines.sources.gold import Rules

    assert make_turn("Which?", answer, choices, C, rules=Rules(**rules)).answer == gold


@pytest.mark.parametrize("answer, choices, rules, reason, words", [
    (7, ["a", "b", "c"], {}, "choices_answer_absent", ["index", "3 choices"]),
    ("2", ["1", "2", "3"], {}, "choices_answer_ambiguous", ["option B", "option C", "answer_is"]),
    ("dog", ["a", "b"], {"answer_is": "letter"}, "choices_answer_absent", ["not an option letter"]),
    ("z", ["a", "b"], {"answer_is": "text"}, "choices_answer_absent", ["none of the choices"]),
    ("yes", None, {"answer_type": "number"}, "answer_type_mismatch", ["number"]),
    ("x", None, {"answer_type": "choice"}, "choices_missing", ["no choices"]),
])
def test_a_gold_that_cannot_be_resolved_says_what_was_expected(answer, choices, rules, reason, words):
    from pipelines.sources.gold import Rules

    with pytest.raises(Problem) as e:
        make_turn("Which?", answer, choices, C, rules=Rules(**rules))
    assert e.value.reason == reason and all(w in e.value.detail for w in words), e.value.detail


def test_annotators_as_dicts_keep_every_answer_and_the_most_common_is_gold():
    votes = [{"answer": a, "answer_confidence": "yes"} for a in ["two", "2", "2", "3", "2"]]
    t = make_turn("How many?", votes, None, C)
    assert (t.answer, t.answer_type, t.meta["answers"]) == ("2", "number", ["two", "2", "2", "3", "2"])


def test_unanswerable_questions_are_rejected_or_kept_by_choice():
    from pipelines.sources.gold import Rules

    with pytest.raises(Problem) as e:
        make_turn("What is it?", None, None, C, answers=["unanswerable"] * 3, answerable=0)
    assert e.value.reason == "unanswerable"
    with pytest.raises(Problem):
        make_turn("What is it?", "Unanswerable", None, C)  # a gold "unanswerable" (LLaVA's VizWiz)
    kept = make_turn("What is it?", None, None, C, rules=Rules(unanswerable="gold"), answerable="unanswerable")
    assert (kept.answer, kept.meta["answerable"]) == ("unanswerable", False)


@pytest.mark.parametrize("conversation", [
    [{"role": "user", "content": "<image>\nWhat colour?"}, {"role": "assistant", "content": "Red."}],
    [{"user": "What colour?\nGive a very brief answer.", "assistant": "Answer: Red", "source": "x"}],
])
def test_conversations_in_role_content_and_user_assistant_forms(conversation):
    turns, _ = conversation_turns(conversation, C)
    assert [(t.question, t.answer) for t in turns] == [("What colour?", "Red")]


def test_a_short_reply_loses_its_full_stop_but_not_an_abbreviation():
    conv = [{"from": "human", "value": "Where?"}, {"from": "gpt", "value": "U.S."},
            {"from": "human", "value": "Who?"}, {"from": "gpt", "value": "Answer: Dr. Smith."}]
    assert [t.answer for t in conversation_turns(conv, C)[0]] == ["U.S.", "Dr. Smith."]


def test_an_annotator_list_stored_as_text_is_read_as_the_list():
    t = make_turn("What vehicle?", None, None, C, answers="['car', 'taxi', 'car']")
    assert (t.answer, t.meta["answers"]) == ("car", ["car", "taxi", "car"])
    assert make_turn("What is written?", "[sic]", None, C).answer == "[sic]"  # not a list: text


def test_a_null_answer_that_falls_back_to_the_annotators_says_so():
    """The answer column is null and the annotators' answers are there: the gold is their most
    common answer, and the turn's meta (shown by `inspect`, published in the rows) says so."""
    t = make_turn("What colour is the car?", None, None, C, answers=["red", "red", "maroon"])
    assert t.answer == "red" and "most common" in t.meta["gold_fallback"]
    assert "gold_fallback" not in make_turn("What colour is the car?", "red", None, C, answers=["red", "maroon"]).meta
