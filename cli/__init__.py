"""The ``cvgrade`` command line: the one place that knows every package of ours (``cli.main``).

The layers below it know nothing of it: ``api`` (the service) uses ``grader`` (grading), which
uses ``harness`` (sandboxes); ``harness/worker`` runs beside the candidate and imports nothing
of ours. ``import-linter`` holds the code to that (``[tool.importlinter]`` in pyproject.toml).
"""
