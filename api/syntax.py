"""The rule for code that cannot even be parsed: it is refused at upload (422), and costs no attempt.

Whatever the kind, the upload is refused with the place and Python's reason
when the code the worker would compile does not compile: a ``.py`` file (and
every ``.py`` file of a zip), or a notebook's code cells (after IPython's
magics are blanked out, as the grader does). Also refused: a notebook that is
not a valid notebook, and an empty file. Nothing is stored and no attempt is
spent; the candidate fixes the file and uploads again. Code that parses but
fails when it runs is graded, and charged, like any other result.

The candidate's source is hostile, so it is never compiled in the service's
process: a child Python (``-I``: no site, no environment, no current folder)
compiles it under a memory and CPU limit, and nothing of it is executed
(``compile`` only). When the check itself cannot finish (the limits, a crash)
the upload is accepted and the grader decides, in its sandbox.
"""

from __future__ import annotations

from grader.limited_python import run_limited
from grader.workspace import Workspace

_MAX_FILES = 500
# Reads [{"where", "source" or "path"}, ...]; prints the first error found, or null.
_CHILD = r"""
for item in job:
    where, source = item["where"], item.get("source")
    if source is None:
        try:
            with open(item["path"], "rb") as stream:
                source = stream.read().decode("utf-8")
        except UnicodeDecodeError as error:
            print(json.dumps({"where": where, "line": None, "reason": f"it is not UTF-8 text (byte {error.start})"}))
            sys.exit(0)
    try:
        compile(source, where, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as error:
        line = getattr(error, "lineno", None)
        text = (getattr(error, "text", None) or "").strip()
        reason = getattr(error, "msg", None) or str(error)
        print(json.dumps({"where": where, "line": line, "reason": reason, "text": text[:80]}))
        sys.exit(0)
print("null")
"""


def parse_error(workspace: Workspace, shown_name: str) -> str | None:
    """Why the workspace's code cannot be parsed (a sentence naming the file, cell and line), or None when it
    compiles, or when the check could not finish."""
    job = _job(workspace, shown_name)
    if not job:
        return None
    found = run_limited(_CHILD, job)
    if not isinstance(found, dict):
        return None
    where = str(found["where"]) + (f", line {found['line']}" if found.get("line") else "")
    text = f" (`{found['text']}`)" if found.get("text") else ""
    return (f"{where}: {found['reason']}{text}; Python cannot parse it, so it cannot be graded: fix it and "
            "upload again (this upload did not use an attempt)")


def _job(workspace: Workspace, shown_name: str) -> list[dict[str, object]]:
    """What the worker compiles: the notebook's cells, the .py file, or every .py file of a folder or zip."""
    job: list[dict[str, object]] = [{"where": f"{shown_name}, cell {cell['number']}", "source": cell["source"]}
                                    for cell in workspace.cells or []]
    if workspace.kind == "py":
        job.append({"where": shown_name, "path": str(workspace.path / "solution.py")})
    elif workspace.kind in ("zip", "folder"):
        files = sorted(path for path in workspace.path.rglob("*.py") if path.is_file() and not path.is_symlink())
        job += [{"where": f"{shown_name}: {path.relative_to(workspace.path).as_posix()}", "path": str(path)}
                for path in files[:_MAX_FILES]]
    return job
