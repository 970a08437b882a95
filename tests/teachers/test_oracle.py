import math
from collections import Counter

import pytest

from pipelines.config.recipe import ORACLE_ERRORS, OracleOptions, SyntheticSource, TeacherConfig
from pipelines.sources.synthetic import make_record
from pipelines.teachers.base import ChatRequest, Sampling
from pipelines.teachers.oracle import OracleTeacher, plan_injection

SOURCE = SyntheticSource(num_records=2000, image_size=64, seed=0)
RECORDS = [make_record(i, SOURCE) for i in range(2000)]


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.2, 0.5, 1.0])
def test_injects_at_the_configured_rate(rate):
    plans = [plan_injection(r, OracleOptions(error_rate=rate)) for r in RECORDS]
    injected = sum(p is not None for p in plans) / len(plans)
    sd = math.sqrt(rate * (1 - rate) / len(plans))
    assert abs(injected - rate) <= 4 * sd + 1e-9


def test_every_kind_is_used_and_only_configured_kinds():
    kinds = Counter(p["kind"] for r in RECORDS if (p := plan_injection(r, OracleOptions(error_rate=1.0))))
    assert set(kinds) == set(ORACLE_ERRORS)
    assert min(kinds.values()) > 2000 / len(ORACLE_ERRORS) / 2
    only = {p["kind"] for r in RECORDS[:300] if (p := plan_injection(r, OracleOptions(error_rate=1.0, errors=["miscount"])))}
    assert only == {"miscount"}


def _ask(teacher, record, stage, turn=None, n=1):
    meta = {"stage": stage, "record": record, **({"turn": turn} if turn is not None else {})}
    return teacher.generate([ChatRequest([{"role": "user", "content": "x"}], Sampling(n=n), meta)])[0]


def test_a_clean_oracle_answers_every_question_correctly_from_its_extraction():
    teacher = OracleTeacher(TeacherConfig(oracle=OracleOptions(error_rate=0.0)))
    for record in RECORDS[:60]:
        for i, turn in enumerate(record.turns):
            reply = _ask(teacher, record, "think", i)
            assert reply.outputs[0].text.splitlines()[-1] == f"Answer: {turn.answer}"
            assert not reply.meta


def test_a_miscount_changes_the_extraction_and_is_reported():
    teacher = OracleTeacher(TeacherConfig(oracle=OracleOptions(error_rate=1.0, errors=["miscount"])))
    clean = OracleTeacher(TeacherConfig(oracle=OracleOptions(error_rate=0.0)))
    for record in RECORDS[:30]:
        bad, good = _ask(teacher, record, "extraction"), _ask(clean, record, "extraction")
        assert bad.outputs[0].text != good.outputs[0].text
        assert bad.meta["injected"]["kind"] == "miscount"


def test_truncation_ends_by_length_and_refusal_refuses():
    cut = OracleTeacher(TeacherConfig(oracle=OracleOptions(error_rate=1.0, errors=["truncation"])))
    for record in RECORDS[:40]:
        plan = plan_injection(record, cut.options)
        turn = plan["turn"] if plan["stage"] == "think" else None
        reply = _ask(cut, record, plan["stage"], turn)
        assert reply.outputs[0].finish_reason == "length"
        assert "Answer:" not in reply.outputs[0].text
    refuse = OracleTeacher(TeacherConfig(oracle=OracleOptions(error_rate=1.0, errors=["refusal"])))
    assert "can't help" in _ask(refuse, RECORDS[0], "extraction").outputs[0].text


def test_wrong_answer_spoils_some_samples_of_one_turn():
    teacher = OracleTeacher(TeacherConfig(oracle=OracleOptions(error_rate=1.0, errors=["wrong_answer"])))
    for record in RECORDS[:40]:
        plan = plan_injection(record, teacher.options)
        reply = _ask(teacher, record, "think", plan["turn"], n=4)
        answers = [o.text.splitlines()[-1].removeprefix("Answer: ") for o in reply.outputs]
        wrong = sum(a != record.turns[plan["turn"]].answer for a in answers)
        assert 2 <= wrong <= 4  # most samples: a minority slip is not an error the data keeps


def test_extraction_samples_vary_like_a_model_and_the_mistake_is_a_slip_unless_repeated():
    slip = OracleTeacher(TeacherConfig(oracle=OracleOptions(error_rate=1.0, errors=["invented_object"])))
    systematic = OracleTeacher(TeacherConfig(oracle=OracleOptions(error_rate=1.0, errors=["invented_object"], repeat=1.0)))
    clean = OracleTeacher(TeacherConfig(oracle=OracleOptions(error_rate=0.0)))
    reordered, repeated = 0, 0
    for record in RECORDS[:30]:
        first, *others = [o.text for o in _ask(slip, record, "extraction", n=3).outputs]
        sentence = plan_injection(record, slip.options)["sentence"]
        assert sentence in first and all(sentence not in o for o in others)
        repeated += sum(sentence in o.text for o in _ask(systematic, record, "extraction", n=3).outputs[1:])
        good = [o.text for o in _ask(clean, record, "extraction", n=3).outputs]
        assert good[0] == first.replace(" " + sentence, "")
        reordered += good[1] != good[0]
        # every sample opens with the scene and works in one sentence per question
        for t in record.turns:
            stmt = __import__("pipelines.sources.scenes", fromlist=["FAMILIES"]).FAMILIES[record.facts["family"]].statement(
                t.meta["template"], t.meta["args"], t.answer, t.choices)
            assert stmt in good[0]
    assert reordered >= 25
    assert repeated >= 0.8 * 60  # every further sample repeats it, unless it left that sentence out


@pytest.mark.parametrize("kind, check", [
    ("answer_leak", lambda text, record: "answer" in text.lower()),
    ("repetition", lambda text, record: max(text.count(s) for s in text.split(". ") if len(s) > 20) >= 6),
])
def test_new_kinds_write_what_the_filters_look_for(kind, check):
    teacher = OracleTeacher(TeacherConfig(oracle=OracleOptions(error_rate=1.0, errors=[kind])))
    for record in RECORDS[:20]:
        reply = _ask(teacher, record, "extraction", n=2)
        assert check(reply.outputs[0].text, record) and not check(reply.outputs[1].text, record)
        assert reply.meta["injected"]["kind"] == kind


def test_statement_mismatch_merges_or_doubles_lines():
    teacher = OracleTeacher(TeacherConfig(oracle=OracleOptions(error_rate=1.0, errors=["statement_mismatch"])))
    for record in RECORDS[:20]:
        lines = _ask(teacher, record, "statements").outputs[0].text.splitlines()
        assert len(lines) != len(record.turns)


def test_records_without_ground_truth_fail_one_request_not_the_batch():
    teacher = OracleTeacher(TeacherConfig())
    good = ChatRequest([], Sampling(), {"stage": "focus", "record": RECORDS[0]})
    bad = ChatRequest([], Sampling(), {"stage": "focus", "record": None})
    replies = teacher.generate([good, bad])
    assert replies[0].error is None and replies[0].outputs[0].text
    assert "ground truth" in replies[1].error


def test_stages_that_differ_only_in_batch_size_share_one_loaded_teacher():
    from pipelines.teachers import load_teacher

    a = load_teacher(TeacherConfig(batch_size=8))
    assert load_teacher(TeacherConfig(batch_size=64)) is a
    assert load_teacher(TeacherConfig(oracle=OracleOptions(error_rate=0.5))) is not a
