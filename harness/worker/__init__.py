"""The worker that runs beside the candidate, inside the sandbox: it imports nothing of ours.

A package only for the checks on the code (mypy, import-linter); the sandbox gets its files
(``harness.images.WORKER_FILES``) and runs ``candidate_worker.py`` as a script.
"""
