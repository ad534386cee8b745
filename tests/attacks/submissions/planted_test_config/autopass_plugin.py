"""A pytest plugin that reports every test as passed (loaded by conftest, addopts, .pth, entry point)."""

import os
import tempfile

import pytest

open(os.path.join(tempfile.gettempdir(), "cvgrade-plant-ran-autopass_plugin"), "w").close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
    report.longrepr = None
    if hasattr(report, "wasxfail"):
        del report.wasxfail


def pytest_collection_modifyitems(session, config, items):
    for item in items:
        item.add_marker(pytest.mark.filterwarnings("ignore"))
