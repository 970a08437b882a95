import pytest

from pipelines.core.record import ImageData, Record, Turn, Verdict, record_id


def _record():
    img = ImageData.from_bytes(b"png", 1, 1, "PNG")
    turns = (Turn("Q?", "A"),)
    return Record(record_id("s", (img,), turns), "s", "cc0-1.0", (img,), turns)


def test_stages_add_but_never_overwrite_or_remove():
    r = _record().add(focus="the sign")
    assert r.focus == "the sign"
    with pytest.raises(ValueError, match="already set"):
        r.add(focus="other")
    with pytest.raises(ValueError, match="source field"):
        r.add(turns=())
    r2 = r.add(verdicts=[Verdict("f", True)]).add(verdicts=[Verdict("g", False, "why")])
    assert [v.filter for v in r2.verdicts] == ["f", "g"]


def test_a_record_ends_once_with_a_reason():
    r = _record().reject("answer_wrong", "detail")
    assert (r.status, r.reason, r.detail) == ("rejected", "answer_wrong", "detail")
    with pytest.raises(ValueError, match="already ended"):
        r.fail("x")


def test_record_id_depends_on_content_only():
    a = ImageData.from_bytes(b"one", 1, 1, "PNG")
    b = ImageData.from_bytes(b"two", 1, 1, "PNG")
    t = (Turn("Q?", "A"),)
    assert record_id("s", (a,), t) == record_id("s", (a,), t)
    assert record_id("s", (a,), t) != record_id("s", (b,), t)
    assert record_id("s", (a,), t) != record_id("s", (a,), (Turn("Q?", "B"),))
