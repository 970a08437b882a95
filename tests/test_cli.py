import pytest

from pipelines.commands.cli import main


def test_run_prints_the_funnel_and_publishes(tmp_path, capsys):
    out = tmp_path / "ds"
    code = main(["run", "quickstart", "--no-progress", "--set", "sources.0.synthetic.num_records=12",
                 "--set", "sources.0.synthetic.image_size=96", "--set", f"output.dir={out}", "--set", f"cache.dir={tmp_path / 'c'}"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Funnel" in printed and "12 in ->" in printed
    assert (out / "README.md").exists() and list((out / "extraction").glob("train-*.parquet"))


def test_progress_bars_count_every_record_with_the_outcome(tmp_path, capsys):
    assert main(["run", "quickstart", "--progress", "bars", "--set", "sources.0.synthetic.num_records=6",
                 "--set", f"output.dir={tmp_path / 'p'}", "--set", f"cache.dir={tmp_path / 'c'}"]) == 0
    captured = capsys.readouterr()
    err = captured.err
    assert "written: 100%" in err and "6/6" in err
    kept = int(captured.out.split(" kept,")[0].rsplit("-> ", 1)[1])
    assert f"kept {kept}, rejected {6 - kept}, failed 0" in err
    assert "tok/s" in err  # a stage's bar shows its teacher's rate


def test_without_a_terminal_log_lines_show_life_and_the_outcome(tmp_path):
    """stderr to a file: no bar escape codes, a line per step at the interval and at the end."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pipelines.commands.cli", "run", "quickstart", "--progress-every", "0.2",
                           "--set", "sources.0.synthetic.num_records=30", "--set", "teacher.oracle.error_rate=0.5",
                           "--set", f"output.dir={tmp_path / 'out'}", "--set", "cache.dir=null"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr and "\x1b[" not in done.stderr
    lines = [x for x in done.stderr.splitlines() if x.startswith("[")]
    final = {x.split("] ", 1)[1].split(":", 1)[0]: x for x in lines[-6:]}
    assert set(final) == {"source", "statements", "focus", "extraction", "think", "written"}
    assert "source: 30/30 records" in final["source"] and "tok/s" in final["extraction"]
    kept = int(done.stdout.split(" kept,")[0].rsplit("-> ", 1)[1])
    assert "written: 30/30 records" in final["written"] and f"kept {kept}, rejected {30 - kept}, failed 0" in final["written"]


def test_recipe_errors_exit_2_and_name_the_key(capsys):
    assert main(["validate", "quickstart", "--set", "teacher.modle=x"]) == 2
    assert "teacher.modle: unknown key" in capsys.readouterr().err
    assert main(["run", "quickstart", "--set", "sources.0.hf.path=lmms-lab/MMStar"]) == 2
    assert "sources.0.hf: hf settings, but sources.0.kind is 'synthetic'" in capsys.readouterr().err


def test_validate_prints_the_resolved_recipe_and_recipes_lists(capsys):
    assert main(["validate", "quickstart", "--set", "sources.0.synthetic.num_records=3"]) == 0
    assert "num_records: 3" in capsys.readouterr().out
    assert main(["recipes"]) == 0
    assert "quickstart" in capsys.readouterr().out


def test_the_command_prints_none_of_beams_known_harmless_warnings(tmp_path):
    """`make demo` in miniature, as a separate process (the warnings come at import)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "pipelines.commands.cli", "run", "quickstart", "--set", "sources.0.synthetic.num_records=4",
                           "--set", f"output.dir={tmp_path / 'out'}", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Funnel" in done.stdout
    for noise in ("apitools not found", "Resource module is not available"):
        assert noise not in done.stderr + done.stdout


def test_log_lines_come_on_time_while_nothing_moves():
    """A long teacher batch: no record moves, yet a line per step comes every interval, with an ETA once a rate is known."""
    import time

    from pipelines.observe.progress import LogLines

    lines = []
    display = LogLines(["source", "written"], 10, every=0.05, emit=lines.append)
    display.tick("source", 4, None)
    time.sleep(0.3)
    display.close()
    assert len(lines) >= 6 and all(line.startswith("[0s] ") for line in lines)
    assert any("source: 4/10 records" in line and "ETA" in line for line in lines)
    assert lines[-1].endswith("written: 0/10 records, 0.0/s; kept 0, rejected 0, failed 0")


def test_the_last_block_is_not_printed_twice():
    """Off a terminal, the timer's block and the closing block of one unchanged state: once."""
    from pipelines.observe.progress import LogLines

    lines = []
    display = LogLines(["source", "written"], 2, every=3600, emit=lines.append)
    display.tick("source", 2, None)
    display.report()  # the timer fired at the end
    display.close()
    assert len(lines) == 2
    display = LogLines(["source", "written"], 2, every=3600, emit=lines.append)
    display.report()
    display.tick("source", 1, None)  # something moved since: the closing block says so
    display.close()
    assert len(lines) == 6 and "source: 1/2" in lines[-2]


def test_inspect_needs_no_teacher_and_previews_what_dedup_and_decontamination_drop(tmp_path, capsys):
    """The default (oracle) teacher on a real source: inspect reads it all the same, and says
    which rows read would go as copies (a shuffled-options copy; a shared letter alone is
    not one) or as eval contamination. A run with that teacher stops before reading."""
    import json

    import yaml

    from tests.sources.helpers import encode, picture

    pic = picture(1, (200, 150))
    (tmp_path / "a.png").write_bytes(encode(pic))
    (tmp_path / "b.jpg").write_bytes(encode(pic.resize((100, 75)), "JPEG"))
    (tmp_path / "a2.jpg").write_bytes(encode(pic.resize((160, 120)), "JPEG"))
    (tmp_path / "c.png").write_bytes(encode(picture(7, (200, 150))))

    def entry(i, image, question, options, gold):
        q = question + "".join(f"\n{chr(65 + j)}. {o}" for j, o in enumerate(options))
        return {"id": str(i), "image": image, "conversations": [{"from": "human", "value": "<image>\n" + q}, {"from": "gpt", "value": gold}]}

    q = "What colour is the tallest bar?"
    (tmp_path / "train.json").write_text(json.dumps([
        entry(1, "a.png", q, ["red", "yellow", "blue"], "B"), entry(2, "b.jpg", q, ["red", "blue", "yellow"], "B"),  # blue != yellow
        entry(3, "a2.jpg", q, ["yellow", "red", "blue"], "A"),  # yellow again, options shuffled: a copy of 1
        entry(4, "c.png", "How many bars are taller than the red one?", [], "3")]))
    (tmp_path / "eval.json").write_text(json.dumps([entry(9, "c.png", "How many bars are taller than the red one?", [], "3")]))
    source = {"kind": "llava", "name": "mine", "llava": {"json": str(tmp_path / "train.json")}}
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "look", "output": {"dir": str(tmp_path / "out")}, "sources": [source],
        "eval_sets": [{"kind": "llava", "name": "bench", "llava": {"json": str(tmp_path / "eval.json")}}],
        "filters": [{"name": "decontaminate"}, {"name": "answer_correct"}]}))
    assert main(["inspect", str(recipe), "--json"]) == 0
    dropped = json.loads(capsys.readouterr().out)[0]["dropped"]
    assert {k: v[0] for k, v in dropped.items()} == {"near_duplicate": 1, "eval_contamination": 1}
    assert "(id 4)" in dropped["eval_contamination"][1] and "(id 3)" in dropped["near_duplicate"][1]
    assert main(["inspect", str(recipe)]) == 0
    assert "would be dropped before the teacher:" in capsys.readouterr().out
    assert main(["run", str(recipe), "--no-progress"]) == 2
    assert "the oracle teacher only works with synthetic sources" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bars_only_on_a_terminal_with_a_width(monkeypatch):
    """A pseudo-terminal reporting 0 columns (some CI runners) gets log lines, not blank bars."""
    import fcntl
    import os
    import pty
    import struct
    import termios

    from pipelines.observe.progress import bars_fit

    leader, follower = pty.openpty()
    with os.fdopen(follower, "w") as tty:
        monkeypatch.setattr("sys.stderr", tty)
        for cols, fits in ((0, False), (80, True)):
            fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, cols, 0, 0))
            assert bars_fit() is fits
    os.close(leader)


def test_version_recipes_and_the_trainers_help_say_what_a_user_needs(capsys):
    import subprocess
    import sys

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("extract-think ")
    assert main(["recipes"]) == 0
    listed = dict(line.split(None, 1) for line in capsys.readouterr().out.strip().splitlines())
    assert listed["quickstart"].startswith("Synthetic scenes with known ground truth")
    done = subprocess.run([sys.executable, "-m", "train_min.train", "--help"], capture_output=True, text=True)
    assert done.stdout.startswith("usage: python -m train_min.train ") and "--model MODEL --data DATA" in done.stdout
    done = subprocess.run([sys.executable, "-m", "train_min.train"], capture_output=True, text=True)
    assert done.returncode == 2 and "required: --model, --data" in done.stderr
