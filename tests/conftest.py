"""Shared pytest fixtures, and the order of the test files."""
import os

import numpy as np
import pytest

import pyoptim


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


@pytest.fixture(params=pyoptim.config.config()["isas_supported"])
def isa(request):
    """Run the test under each instruction set this CPU supports, then restore."""
    before = pyoptim.get_isa()
    pyoptim.set_isa(request.param)
    yield request.param
    pyoptim.set_isa(before)


@pytest.fixture(scope="session", autouse=True)
def _outside_the_source_tree(tmp_path_factory):
    """The whole session (and every subprocess a test or fixture starts) runs in a
    temporary directory, so that `python -c` / `python -m pyoptim` import the
    installed package rather than the source tree, which has no compiled core in a
    clean checkout."""
    before = os.getcwd()
    os.chdir(tmp_path_factory.mktemp("cwd"))
    yield
    os.chdir(before)


# The slowest files first (the op built and run under each instruction set, the sparse fuzz's
# builds, the benchmark's smoke run, the multi-worker example, ...): the README's command,
# `pytest -n 2 --dist loadfile`, gives each file whole to one of two processes in collection
# order, and a slow file collected last would leave one process working alone at the end.
_SLOW_FILES = ("test_portable.py", "test_sparse.py", "test_bench.py", "test_scale.py",
               "test_keras.py", "test_trace.py", "test_keras_elementwise.py", "test_backends.py")


def pytest_configure(config):
    # pytest-xdist sorts the files by their number of tests unless told not to
    # (--loadscope-reorder is its default): keep the order set below.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(session, config, items):
    rank = {name: i for i, name in enumerate(_SLOW_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: files stay whole
