import pytest

from pipelines.commands.run import run
from pipelines.config.recipe import read_recipe


@pytest.fixture(scope="session")
def published(tmp_path_factory):
    """A dataset this project published (40 oracle records, 64 px images) for the trainers to
    read; test modules that need another size define their own."""
    tmp = tmp_path_factory.mktemp("train_data")
    return run(read_recipe("quickstart", ["sources.0.synthetic.num_records=40", "sources.0.synthetic.image_size=64",
                                          "teacher.oracle.error_rate=0", f"output.dir={tmp / 'out'}", "cache.dir=null"])).out_dir
