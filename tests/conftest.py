"""Shared pytest fixtures."""
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
