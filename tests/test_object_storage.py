"""Output and reply cache on object storage: a run whose output.dir and cache.dir are s3://
URLs on a real S3-compatible server (moto, in its own process, through s3fs). The workers
write the shards there, the card and report land beside them, the staging folder is swapped
into place and nothing else is left; a rerun pays no teacher call; workers in separate
processes that share nothing but the bucket publish the same dataset."""

import fsspec
import pytest

from pipelines.commands.run import run
from pipelines.config.recipe import read_recipe
from tests.bench.bench_resume import dataset_rows
from tests.s3_server import s3_endpoint

pytestmark = pytest.mark.slow
BASE = ["sources.0.synthetic.num_records=16", "sources.0.synthetic.image_size=64"]
MULTI_PROCESS = ["runner.runner=DirectRunner", "runner.options=[--direct_running_mode=multi_processing, --direct_num_workers=2]"]


@pytest.fixture(scope="module")
def bucket():
    with s3_endpoint() as url:
        yield url


def _files(url: str) -> set[str]:
    fs, root = fsspec.core.url_to_fs(url)
    return {p[len(root) + 1:] for p in fs.find(root)}


def test_a_run_publishes_to_s3_and_reruns_from_a_cache_there(bucket, tmp_path):
    local = run(read_recipe("quickstart", BASE + [f"output.dir={tmp_path / 'local'}", "cache.dir=null"]))
    out, cache = f"{bucket}/runs/quickstart", f"{bucket}/cache"
    first = run(read_recipe("quickstart", BASE + [f"output.dir={out}", f"cache.dir={cache}"]))
    assert first.out_dir == out and first.funnel.teacher_requests > 0
    files = _files(out)
    assert {"README.md", "funnel.json", "recipe.yaml", "report.html"} <= files
    assert any(f.startswith(f"extraction/train-{first.run_id}-00000-of-") for f in files)
    assert not [f for f in _files(f"{bucket}/runs") if ".partial-" in f or ".old-" in f or "/.tmp-" in f]
    assert dataset_rows(out) == dataset_rows(local.out_dir)
    with fsspec.open(f"{out}/README.md", "r") as f:
        assert f"train-{first.run_id}-*.parquet" in f.read()

    again = run(read_recipe("quickstart", BASE + [f"output.dir={out}", f"cache.dir={cache}"]))
    assert again.funnel.teacher_requests == 0 and again.funnel.cache_hits == first.funnel.teacher_requests
    assert not [f for f in _files(out) if first.run_id in f]  # the first version was replaced, not mixed in
    assert dataset_rows(out) == dataset_rows(local.out_dir)


def test_multi_process_workers_share_nothing_but_the_bucket(bucket, tmp_path):
    local = run(read_recipe("quickstart", BASE + [f"output.dir={tmp_path / 'local'}", "cache.dir=null"]))
    out = f"{bucket}/runs/multi"
    many = run(read_recipe("quickstart", BASE + MULTI_PROCESS + [f"output.dir={out}", f"cache.dir={bucket}/cache-multi"]))
    assert many.funnel.records_in == 16 and many.funnel.kept == local.funnel.kept
    assert dataset_rows(out) == dataset_rows(local.out_dir)
    assert fsspec.filesystem("s3").find(f"{bucket}/cache-multi")  # the replies the workers cached are in the bucket


def test_push_and_export_ask_for_a_local_copy(tmp_path):
    from pipelines.publishing.exports import export
    from pipelines.publishing.hub import PushError, push

    with pytest.raises(ValueError, match="export reads a local folder"):
        export("s3://bucket/runs/quickstart", "trl", tmp_path / "trl")
    with pytest.raises(PushError, match="publish uploads a local folder"):
        push("s3://bucket/runs/quickstart", "me/coin")


def test_the_output_must_be_a_folder_inside_a_bucket():
    from pipelines.commands.run import output_location
    from pipelines.config import ConfigError

    with pytest.raises(ConfigError, match="inside the bucket"):
        output_location("s3://bucket/")
    assert output_location("s3://bucket/runs/coin/") == "s3://bucket/runs/coin"
    assert output_location("file:///tmp/coin") == "/tmp/coin"
