"""Shared fixtures: the embedded real models, loaded once per test session."""

import pytest

from anyspec.cli import configure_process
from anyspec.models.registry import load_model

# the process-wide defaults the anyspec command sets (OpenMP spin), before torch or llama.cpp
# is imported: the tests alternate two models' thread pools as the command does
configure_process()

REAL_MODELS = {"gemma_llamacpp", "smollm_llamacpp", "gemma_hf", "smollm_hf"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects anything: check every test collected
def pytest_collection_modifyitems(items):
    """A test that loads the real models belongs to the slow tier (`-m slow`)."""
    unmarked = [item.nodeid for item in items if REAL_MODELS & set(item.fixturenames)
                and item.get_closest_marker("slow") is None]
    if unmarked:
        raise pytest.UsageError("these tests load the real models but are not marked "
                                "@pytest.mark.slow:\n  " + "\n  ".join(unmarked))


@pytest.fixture(scope="session")
def gemma_llamacpp():
    return load_model("gemma-3-270m", "llamacpp")


@pytest.fixture(scope="session")
def smollm_llamacpp():  # used as a draft only, loaded as anyspec loads drafts
    return load_model("smollm2-135m-instruct", "llamacpp", draft=True)


@pytest.fixture(scope="session")
def gemma_hf():
    return load_model("gemma-3-270m", "hf")


@pytest.fixture(scope="session")
def smollm_hf():
    return load_model("smollm2-135m-instruct", "hf")
