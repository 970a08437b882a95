from pipelines.cli import main


def test_run_prints_the_funnel_and_publishes(tmp_path, capsys):
    out = tmp_path / "ds"
    code = main(["run", "quickstart", "--no-progress", "--set", "sources.0.synthetic.num_records=12",
                 "--set", "sources.0.synthetic.image_size=96", "--set", f"output.dir={out}", "--set", f"cache.dir={tmp_path / 'c'}"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Funnel" in printed and "12 in ->" in printed
    assert (out / "README.md").exists() and list((out / "extraction").glob("train-*.parquet"))


def test_progress_bars_count_every_record(tmp_path, capsys):
    assert main(["run", "quickstart", "--set", "sources.0.synthetic.num_records=6", "--set", f"output.dir={tmp_path / 'p'}", "--set", f"cache.dir={tmp_path / 'c'}"]) == 0
    err = capsys.readouterr().err
    assert "written: 100%" in err and "6/6" in err


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

    done = subprocess.run([sys.executable, "-m", "pipelines.cli", "run", "quickstart", "--set", "sources.0.synthetic.num_records=4",
                           "--set", f"output.dir={tmp_path / 'out'}", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Funnel" in done.stdout
    for noise in ("apitools not found", "Resource module is not available"):
        assert noise not in done.stderr + done.stdout
