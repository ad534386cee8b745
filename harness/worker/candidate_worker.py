"""The candidate worker: imports a submission and serves calls from the judge.

Runs inside the sandbox, next to the candidate's code, so it trusts nothing it
sees and is trusted by nobody: the judge treats every reply as untrusted data.
It depends only on the standard library, numpy, torch and ``wire.py`` (copied
beside it), never on the host's packages.

Usage::

    python -I candidate_worker.py SPEC_JSON REQUEST_FD REPLY_FD   # pipes (local sandbox)
    python -I candidate_worker.py SPEC_JSON --socket PATH         # a Unix socket (containers)
"""

from __future__ import annotations

import inspect
import json
import os
import socket
import sys
import traceback
import types
from typing import Any


def _open_channel(argv: list[str]) -> tuple[int, int]:
    """The request and reply file descriptors: inherited pipes, or a socket the judge listens on."""
    if argv[2] == "--socket":
        channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        channel.connect(argv[3])
        fd = channel.detach()
        return fd, fd
    return int(argv[2]), int(argv[3])


if __name__ == "__main__":
    # Connect before the slow imports below: the judge is waiting for the channel.
    CHANNEL = _open_channel(sys.argv)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Import the numeric stack and our wire format before the candidate's folder
# joins sys.path, so that a `torch.py` beside the solution shadows nothing here.
import numpy  # noqa: E402
import torch  # noqa: E402
import wire  # noqa: E402

MAX_MESSAGE_CHARS = 4000


def _describe(exc: BaseException, file_prefix: str) -> dict[str, Any]:
    frames = [
        frame
        for frame in traceback.extract_tb(exc.__traceback__)
        if frame.filename.startswith(file_prefix) or frame.filename.startswith("<cell")
    ]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(exc), exc)
    return {
        "type": type(exc).__name__,
        "message": str(exc)[:MAX_MESSAGE_CHARS],
        "traceback": "".join(lines)[-MAX_MESSAGE_CHARS:],
        "location": _location(frames),
    }


def _location(frames: list[traceback.FrameSummary]) -> str:
    if not frames:
        return ""
    last = frames[-1]
    return f"{last.filename}, line {last.lineno}"


def _load_module(spec: dict[str, Any]) -> tuple[types.ModuleType, list[str]]:
    workspace = spec["workspace"]
    sys.path.insert(0, workspace)
    warnings: list[str] = []
    module = types.ModuleType("solution")
    if spec.get("cells") is not None:
        module.__file__ = os.path.join(workspace, "solution.ipynb")
        sys.modules["solution"] = module
        for cell in spec["cells"]:
            code = compile(cell["source"], f"<cell {cell['number']}>", "exec")
            try:
                exec(code, module.__dict__)  # noqa: S102 - running the candidate's code is the job
            except BaseException as exc:
                exc.add_note(f"in notebook cell {cell['number']}")
                raise
        return module, warnings
    path = os.path.join(workspace, spec["entry"])
    module.__file__ = path
    sys.modules["solution"] = module
    with open(path, encoding="utf-8") as source:
        code = compile(source.read(), path, "exec")
    exec(code, module.__dict__)  # noqa: S102
    return module, warnings


ADAPTER_PREFIX = "adapter."


def _load_adapter(spec: dict[str, Any], solution: types.ModuleType) -> types.ModuleType | None:
    """The challenge's adapter: non-secret code that runs beside the submission (models, data sets).

    Loaded by path under a name no submission file can shadow; ``bind`` gets the
    submission's module. It shares this process with the candidate's code, so the
    judge trusts its replies no more than the candidate's own.
    """
    if not spec.get("adapter") or not spec.get("assets"):
        return None
    import importlib.util

    path = os.path.join(spec["assets"], spec["adapter"])
    module_spec = importlib.util.spec_from_file_location("cvgrade_adapter", path)
    if module_spec is None or module_spec.loader is None:
        raise ImportError(f"the challenge's adapter {spec['adapter']} cannot be loaded")
    adapter = importlib.util.module_from_spec(module_spec)
    sys.modules["cvgrade_adapter"] = adapter
    module_spec.loader.exec_module(adapter)
    bind = getattr(adapter, "bind", None)
    if callable(bind):
        bind(solution, spec["assets"])
    return adapter


def _device() -> dict[str, Any]:
    """The accelerator this worker can use, for the judge's hardware class and the result."""
    if not torch.cuda.is_available():
        return {"type": "cpu", "name": "cpu", "memory_mb": 0, "count": 0}
    properties = torch.cuda.get_device_properties(0)
    driver = ""
    try:
        with open("/proc/driver/nvidia/version", encoding="utf-8") as version:
            driver = version.readline().strip()[:200]
    except OSError:
        pass
    return {"type": "cuda", "name": properties.name, "memory_mb": properties.total_memory >> 20,
            "count": torch.cuda.device_count(), "driver": driver, "cuda": str(torch.version.cuda)}


def _check_functions(module: types.ModuleType, wanted: list[dict[str, Any]]) -> dict[str, str]:
    """Map each wanted function to "" when usable, else to a sentence saying what is wrong."""
    problems: dict[str, str] = {}
    for function in wanted:
        name = function["name"]
        params = function["parameters"]
        expected = f"{name}({', '.join(params)})"
        target = module.__dict__.get(name)
        if target is None:
            problems[name] = f"your solution does not define {expected}"
            continue
        if not callable(target):
            problems[name] = f"{name} in your solution is a {type(target).__name__}, not a function"
            continue
        try:
            signature = inspect.signature(target)
            signature.bind(*params)
        except TypeError:
            problems[name] = f"{name}{signature} cannot be called as {expected}"
        except ValueError:
            pass  # builtins without a signature: let the call decide
        else:
            problems[name] = ""
    return problems


def _reply(fd: int, message: dict[str, Any]) -> None:
    try:
        wire.write_message(fd, message)
    except wire.UnsupportedValue as err:
        wire.write_message(
            fd, {"ok": False, "error": {"type": "UnsupportedValue", "message": str(err),
                                        "traceback": "", "location": ""}}
        )


def _apply_rlimits(rlimits: dict[str, int]) -> None:
    """Lower soft and hard limits before any of the candidate's code runs."""
    import resource

    for name, value in rlimits.items():
        resource.setrlimit(getattr(resource, name), (value, value))


_PR_SET_NO_NEW_PRIVS = 38
_SECCOMP_SET_MODE_FILTER = 1
_SECCOMP_FILTER_FLAG_TSYNC = 1
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}


def _install_seccomp(program_hex: str | None) -> None:
    """Install the harness's filter (file locks, watches and CPU affinity made inert) on every thread of
    this process, before any of the candidate's code runs; its children inherit it, and nothing undoes it.

    Filters stack: the sandbox's own (bubblewrap's, or the engine's profile) stays in force.
    """
    if not program_hex:
        return
    import ctypes
    import platform

    program = bytes.fromhex(program_hex)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    buffer = ctypes.create_string_buffer(program, len(program))
    fprog = SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_void_p))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    number = _SYS_SECCOMP[platform.machine()]
    if libc.syscall(number, _SECCOMP_SET_MODE_FILTER, _SECCOMP_FILTER_FLAG_TSYNC, ctypes.byref(fprog)) != 0:
        raise OSError(ctypes.get_errno(), "seccomp(SECCOMP_SET_MODE_FILTER) failed")


def serve(spec: dict[str, Any], request_fd: int, reply_fd: int) -> None:
    # First word to the judge: the runtime is loaded; the solution's import (its setup time) starts now.
    _reply(reply_fd, {"ok": True, "phase": "runtime"})
    torch.set_num_threads(int(spec.get("threads", 1)))
    _apply_rlimits(spec.get("rlimits", {}))
    _install_seccomp(spec.get("seccomp"))
    reader = wire.blocking_reader(request_fd)
    if spec.get("awaits_submission"):
        # Started before the submission was known: its entry (or notebook cells) comes now, and
        # only then is there anything in the workspace to import.
        try:
            handed = reader.read()
        except wire.ChannelClosed:
            return  # a standby that was never used
        if type(handed) is not dict or handed.get("op") != "submission":
            return
        spec["entry"], spec["cells"] = handed.get("entry"), handed.get("cells")
    prefix = spec["workspace"]
    if spec.get("assets"):
        os.environ["CVGRADE_ASSETS"] = spec["assets"]
    try:
        module, warnings = _load_module(spec)
    except BaseException as exc:
        _reply(reply_fd, {"ok": False, "phase": "import", "error": _describe(exc, prefix)})
        return
    try:
        adapter = _load_adapter(spec, module)
    except BaseException as exc:
        error = _describe(exc, spec.get("assets") or prefix)
        error["message"] = f"the challenge's adapter failed to load beside your solution: {error['message']}"
        _reply(reply_fd, {"ok": False, "phase": "import", "error": error})
        return
    problems = _check_functions(module, spec.get("functions", []))
    _reply(reply_fd, {"ok": True, "phase": "import", "functions": problems, "warnings": warnings,
                      "versions": {"python": sys.version.split()[0], "torch": str(torch.__version__),
                                   "numpy": numpy.__version__},
                      "device": _device()})
    while True:
        try:
            request = reader.read()
        except wire.ChannelClosed:
            return
        op = request.get("op") if type(request) is dict else None
        if op == "ping":
            _reply(reply_fd, {"ok": True})
            continue
        if op != "call":
            _reply(reply_fd, {"ok": False, "error": {"type": "ProtocolError",
                                                     "message": f"unknown op {op!r}",
                                                     "traceback": "", "location": ""}})
            continue
        name = request["function"]
        if isinstance(name, str) and name.startswith(ADAPTER_PREFIX) and adapter is not None:
            target = adapter.__dict__.get(name[len(ADAPTER_PREFIX):])
        else:
            target = module.__dict__.get(name)
        if not callable(target):
            _reply(reply_fd, {"ok": False, "error": {
                "type": "MissingFunction", "message": problems.get(name) or f"{name} is not defined",
                "traceback": "", "location": ""}})
            continue
        try:
            value = target(*request["args"], **request["kwargs"])
        except BaseException as exc:
            _reply(reply_fd, {"ok": False, "error": _describe(exc, prefix)})
            continue
        if request.get("echo_args"):
            _reply(reply_fd, {"ok": True, "value": value, "args_after": request["args"]})
        else:
            _reply(reply_fd, {"ok": True, "value": value})


def main() -> None:
    spec_path = sys.argv[1]
    request_fd, reply_fd = CHANNEL
    with open(spec_path, encoding="utf-8") as handle:
        spec = json.load(handle)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.chdir(spec["workspace"])
    serve(spec, request_fd, reply_fd)


if __name__ == "__main__":
    main()
