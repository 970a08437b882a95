"""The output folder is never a user's other files, and a good dataset is never replaced by a
failed run, a half swap or a concurrent run."""

import hashlib
import os
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.funnel import Funnel
from pipelines.output import OutputLock, OutputRefused, is_publish
from pipelines.recipe import OutputConfig, load_recipe
from pipelines.run import publish_refusal, run

SMALL = ["sources.0.synthetic.num_records=8", "sources.0.synthetic.image_size=64"]


def _args(out, cache, *extra):
    sets = [*SMALL, f"output.dir={out}", f"cache.dir={cache}", *extra]
    return ["run", "quickstart", "--no-progress", *(a for s in sets for a in ("--set", s))]


def _digest(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """A finished publish to copy where a test needs a good dataset to protect."""
    tmp = tmp_path_factory.mktemp("good")
    assert main(_args(tmp / "ds", tmp / "cache")) == 0
    return tmp / "ds"


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _down(tmp_path):
    """Settings for a teacher whose endpoint is not there: every record fails."""
    return ["teacher.backend=openai", "teacher.model=m", f"teacher.openai.base_url=http://127.0.0.1:{_dead_port()}/v1",
            "teacher.openai.max_retries=0", "teacher.openai.timeout_s=2", "teacher.openai.api_key_env=ET_NO_KEY"]


def test_a_folder_of_other_files_is_refused_before_any_work(tmp_path, capsys):
    thesis = tmp_path / "project"
    thesis.mkdir()
    (thesis / "thesis.tex").write_text("five years of work")
    assert main(_args(thesis, tmp_path / "cache")) == 2
    assert "not a dataset of this tool" in capsys.readouterr().err
    assert (thesis / "thesis.tex").read_text() == "five years of work" and os.listdir(thesis) == ["thesis.tex"]
    assert not (tmp_path / "cache").exists()  # refused before the first teacher call


def test_a_file_the_root_home_and_working_folder_are_refused(tmp_path, monkeypatch, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    home = tmp_path / "home"
    (home / "projects" / "work").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home / "projects" / "work")
    for target, why in ((notes, "is a file"), ("/", "root of the file system"), ("~/", "your home folder"),
                        (".", "the working folder"), ("..", "holds the working folder"), ("~/..", "holds your home folder")):
        assert main(_args(target, tmp_path / "cache")) == 2, target
        assert why in capsys.readouterr().err
    assert notes.read_text() == "keep me" and (home / "projects" / "work").is_dir()


def test_an_empty_folder_and_an_earlier_publish_may_be_replaced(tmp_path, good):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(_args(empty, tmp_path / "cache")) == 0 and is_publish_local(empty)
    again = tmp_path / "again"
    shutil.copytree(good, again)
    assert main(_args(again, tmp_path / "cache", "sources.0.synthetic.num_records=5")) == 0
    assert is_publish_local(again) and _digest(again) != _digest(good)


def is_publish_local(folder: Path) -> bool:
    import fsspec

    return is_publish(fsspec.filesystem("file"), str(folder))


def test_a_run_whose_teacher_is_down_exits_1_and_keeps_the_good_dataset(tmp_path, good, capsys):
    out = tmp_path / "ds"
    shutil.copytree(good, out)
    before = _digest(out)
    assert main(_args(out, tmp_path / "cache", *_down(tmp_path))) == 1
    err = capsys.readouterr().err
    assert "not published: 8 of 8 records failed, more than output.max_failed_share 0.5" in err
    assert "statements_teacher_error: connection error" in err  # one failed row says what broke
    assert _digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no staging or lock left


def test_the_shares_that_decide_publishing():
    f = Funnel(records_in=10, kept=3, rejected=2, failed=5)
    assert publish_refusal(f, OutputConfig()) is None  # half failed: published
    assert "6 of 10 records failed" in publish_refusal(replace(f, kept=2, failed=6), OutputConfig())
    assert publish_refusal(replace(f, kept=2, failed=6), OutputConfig(max_failed_share=0.6)) is None
    none_kept = Funnel(records_in=4, kept=0, rejected=4, failed=0)
    assert "0 records were kept" in publish_refusal(none_kept, OutputConfig())
    assert publish_refusal(none_kept, OutputConfig(min_kept=0)) is None


def test_a_swap_killed_between_its_renames_is_mended_by_the_next_run(tmp_path, good):
    """A kill after `out -> .out.old-*` and before `.out.partial-* -> out` leaves no dataset at
    out: the next run puts the old one back (even if that run itself does not publish) and
    deletes what the dead run left."""
    out = tmp_path / "ds"
    shutil.copytree(good, tmp_path / ".ds.old-dead0001")
    shutil.copytree(good, tmp_path / ".ds.partial-dead0002")
    assert not out.exists()
    assert main(_args(out, tmp_path / "cache", *_down(tmp_path))) == 1  # this run fails, yet
    assert _digest(out) == _digest(good)  # the previous dataset is back
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]
    # killed after the second rename: the new dataset is in place, the old one still aside
    shutil.copytree(good, tmp_path / ".ds.old-dead0003")
    assert main(_args(out, tmp_path / "cache")) == 0
    assert is_publish_local(out) and not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]


def test_a_second_run_of_one_output_is_refused_while_the_first_runs(tmp_path, good):
    import fsspec

    out = tmp_path / "ds"
    shutil.copytree(good, out)
    recipe = load_recipe("quickstart", [*SMALL, f"output.dir={out}", f"cache.dir={tmp_path / 'cache'}"])
    with OutputLock(fsspec.filesystem("file"), str(out)):
        with pytest.raises(OutputRefused, match="another run is writing to"):
            run(recipe)
    assert _digest(out) == _digest(good)
    assert run(recipe).funnel.records_in == 8  # once the first is done
