"""The output folder is never a user's other files, and a good dataset is never replaced by a
failed run, a half swap or a concurrent run."""

import hashlib
import os
import shutil
import socket
from dataclasses import replace
from pathlib import Path

import pytest

from pipelines.commands.cli import main
from pipelines.commands.run import publish_refusal, run
from pipelines.config.recipe import OutputConfig, read_recipe
from pipelines.observe.funnel import Funnel
from pipelines.publishing.output import OutputRefused, is_publish
from pipelines.publishing.replace import OutputLock

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
            "teacher.openai.max_retries=0", "teacher.openai.timeout_s=2", "teacher.openai.api_key_env=ET_NO_KEY",
            "teacher.preflight=false"]  # the run itself meets the dead endpoint: the pre-flight would stop it first


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


KILLED_AT_MOVE = """
import os, sys
import pipelines.publishing.replace as replace
from pipelines.config.recipe import read_recipe
from pipelines.commands.run import run

die_after, moves, real = int(sys.argv[1]), [], replace._move
def move(fs, source, target):
    if len(moves) == die_after:
        os._exit(9)  # as a kill -9 would: no cleanup, no unlock but the kernel's
    moves.append(source)
    real(fs, source, target)
    if len(moves) == die_after and die_after == 2:
        os._exit(9)
replace._move = move
run(read_recipe("quickstart", sys.argv[2:]))
"""


def _killed(tmp_path, out, moves: int) -> None:
    """A run of `out` that dies (os._exit) before its move number `moves` + 1, or right after
    its second move when `moves` is 2."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", KILLED_AT_MOVE, str(moves), *SMALL, f"output.dir={out}",
                           f"cache.dir={tmp_path / 'cache'}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr


def test_a_swap_killed_between_its_renames_is_mended_by_the_next_run(tmp_path, good):
    """A kill after `out -> .out.old-*` and before `.out.partial-* -> out` leaves no dataset at
    out: the next run puts the old one back (even if that run itself does not publish) and
    deletes the dead run's staging folder; both carry the dead run's marker."""
    out = tmp_path / "ds"
    shutil.copytree(good, out)
    _killed(tmp_path, out, 1)
    assert not out.exists() and len([p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]) >= 2
    assert main(_args(out, tmp_path / "cache", *_down(tmp_path))) == 1  # this run fails, yet
    assert _digest(out) == _digest(good)  # the previous dataset is back, as it was (no marker left in it)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]
    # killed after the second rename: the new dataset is in place, the old one still aside
    _killed(tmp_path, out, 2)
    assert is_publish_local(out) and _digest(out) != _digest(good)
    assert main(_args(out, tmp_path / "cache")) == 0
    assert is_publish_local(out) and not [p for p in tmp_path.iterdir() if p.name.startswith(".ds.")]


def test_leftovers_are_trusted_by_proof_not_by_name(tmp_path, good, caplog):
    """Folders named like a dead run's leftovers, but planted (a publish under `.ds.old-*`, files
    under `.ds.partial-*`, a link to a user's folder): a run - one that fails, and one that
    publishes - neither restores nor deletes nor follows any of them, and says so."""
    import logging

    caplog.set_level(logging.WARNING)
    out = tmp_path / "ds"
    shutil.copytree(good, tmp_path / ".ds.old-planted1")
    (tmp_path / ".ds.partial-planted2").mkdir()
    (tmp_path / ".ds.partial-planted2" / "thesis.tex").write_text("mine")
    user = tmp_path / "user"
    user.mkdir()
    (user / "README.md").write_text("my readme")
    (tmp_path / ".ds.partial-planted3").symlink_to(user)
    before = {p.name: _digest(p) for p in tmp_path.iterdir() if p.name.startswith(".ds.")}
    assert main(_args(out, tmp_path / "cache", *_down(tmp_path))) == 1
    assert not out.exists()  # the planted publish was not restored as the dataset
    assert main(_args(out, tmp_path / "cache")) == 0 and is_publish_local(out)
    assert {p.name: _digest(p) for p in tmp_path.iterdir() if p.name.startswith(".ds.")} == before
    assert (user / "README.md").read_text() == "my readme" and os.listdir(user) == ["README.md"]
    assert "left " + str(tmp_path / ".ds.old-planted1") + " alone" in caplog.text


def test_a_lock_file_removed_by_the_run_before_is_not_trusted(tmp_path, monkeypatch):
    """Between opening `.NAME.lock` and locking it, the run before removes it and a third run
    could lock a new file there: a lock on a file no longer at the path is let go and the
    file at the path locked instead."""
    import fcntl

    import fsspec

    import pipelines.publishing.replace as replace

    out = tmp_path / "ds"
    real_flock, calls = fcntl.flock, []

    def flock(handle, op):
        if not calls:  # the run before finishes now: it removes the file we just opened
            os.unlink(tmp_path / ".ds.lock")
        calls.append(op)
        return real_flock(handle, op)

    monkeypatch.setattr(replace.fcntl, "flock", flock)
    with OutputLock(fsspec.filesystem("file"), str(out)) as lock:
        assert os.fstat(lock._file.fileno()).st_ino == os.stat(tmp_path / ".ds.lock").st_ino
        assert len(calls) == 2  # the first lock was on the removed file: taken again on the new one
    assert not (tmp_path / ".ds.lock").exists()


def test_a_second_run_of_one_output_is_refused_while_the_first_runs(tmp_path, good):
    import fsspec

    out = tmp_path / "ds"
    shutil.copytree(good, out)
    recipe = read_recipe("quickstart", [*SMALL, f"output.dir={out}", f"cache.dir={tmp_path / 'cache'}"])
    with OutputLock(fsspec.filesystem("file"), str(out)):
        with pytest.raises(OutputRefused, match="another run is writing to"):
            run(recipe)
    assert _digest(out) == _digest(good)
    assert run(recipe).funnel.records_in == 8  # once the first is done


def test_the_cache_hint_is_given_only_when_there_is_a_cache(tmp_path, capsys):
    assert main(_args(tmp_path / "a", tmp_path / "cache", *_down(tmp_path))) == 1
    assert "Replies that did arrive are in the cache" in capsys.readouterr().err
    assert main(_args(tmp_path / "b", "null", *_down(tmp_path))) == 1
    assert "in the cache" not in capsys.readouterr().err
