"""The attack suite's submissions are hostile data, never tests: pytest must not collect them.

``submissions/planted_test_config`` holds a ``conftest.py``, a ``pytest.ini`` and a plugin that
make every test pass; ``submissions/shadow_packages`` holds a ``pytest.py``. They are graded,
not collected.
"""

collect_ignore = ["submissions"]
