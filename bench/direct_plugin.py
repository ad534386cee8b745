"""A pytest plugin for the benchmark's baseline: the hidden checks with the solution imported directly.

No sandbox, no channel, no judge process: the same check files, with fixtures
that call a solution module in this process. Only for measuring overhead; the
grader never runs candidate code like this.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest


def _load(path: str, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _copy(value: Any) -> Any:
    clone = getattr(value, "clone", None)
    return clone() if callable(clone) else value


class Direct:
    def __init__(self, module: ModuleType) -> None:
        self._module = module

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)

    def call(self, name: str, *args: Any, timeout_s: float | None = None, **kwargs: Any) -> Any:
        return getattr(self._module, name)(*map(_copy, args), **kwargs)

    def timed(self, name: str, *args: Any, timeout_s: float | None = None, **kwargs: Any) -> tuple[Any, float]:
        args = tuple(map(_copy, args))
        started = time.perf_counter()
        value = getattr(self._module, name)(*args, **kwargs)
        return value, time.perf_counter() - started

    def call_with_inputs(
        self, name: str, *args: Any, timeout_s: float | None = None, **kwargs: Any
    ) -> tuple[Any, list[Any]]:
        copies = list(map(_copy, args))
        return getattr(self._module, name)(*copies, **kwargs), copies

    @contextlib.contextmanager
    def frozen(self) -> Iterator[str]:
        yield "nothing to freeze: the solution runs in this process"


class Record:
    def metric(self, name: str, value: object) -> None:
        pass


@pytest.fixture(scope="session")
def candidate() -> Direct:
    return Direct(_load(os.environ["BENCH_SOLUTION"], "bench_candidate"))


@pytest.fixture(scope="session")
def reference() -> Direct:
    return Direct(_load(os.environ["BENCH_REFERENCE"], "bench_reference"))


@pytest.fixture
def record() -> Record:
    return Record()
