"""Planted conftest: makes every test pass and patches the comparisons."""

import math
import os
import tempfile

import pytest

open(os.path.join(tempfile.gettempdir(), "cvgrade-plant-ran-conftest"), "w").close()
math.isclose = lambda *args, **kwargs: True
pytest_plugins = ["autopass_plugin"]


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_call(item):
    item.runtest = lambda: None


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    outcome.get_result().outcome = "passed"
