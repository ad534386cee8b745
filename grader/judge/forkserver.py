"""The warm judge: a trusted process that has imported torch, numpy and pytest once, and forks a
fresh judge from itself for every grading.

A cold judge (``python -I -m grader.judge.runner SPEC``) spends most of its start importing
torch and pytest: seconds of CPU per grading, paid again by every grading. (torchvision is not
imported: no shipped hidden check needs it, and its ops pull in ``torch._dynamo``, another 1.8 CPU
seconds; a check that imports it pays that in its own judge.) The fork server pays them once
per grader process (a CLI run, a validation, ``cvgrade serve``, a fleet worker) and forks a
judge per grading:

    grader --request (spec, fds)--> fork server --fork--> judge (runner.run_judge_main)
           <------- pid, exit code ----------------'

Isolation between gradings is the fork's: the server itself never runs a check, never loads a
challenge's files and never sees anything of a candidate's (it handles only the path of a spec
the grader wrote in its private folder), so every judge starts from the same clean state, and
whatever a judge changes (module globals, environment, files in its folder, the processes it
starts) dies with that judge. A judge is its own session, joins its own cgroup (or sets its
own rlimits) before it reads its spec, and watches the grader's pipe on its stdin exactly like a
cold judge (``grader.judge.runner``).

The server holds no threads (it forks), so it reaps its judges through pidfds, in one loop with
its control socket. It ends when the grader's end of that socket closes, however the grader
ended: a judge still running then ends by its own watch of the grader's pipe.

Protocol (``SOCK_SEQPACKET`` socket pair, one JSON message per packet):

- grader -> server: ``{"spec", "cwd", "env", "cgroup_procs"}`` with three file descriptors:
  the reply socket of this judge, the read end of the grader's watch pipe (the judge's stdin)
  and the judge's log (its stdout and stderr);
- grader -> server: ``{"warm_up": true}``, no descriptors: a light server (``main``) imports
  torch, numpy and pytest now, for the judges it forks after;
- server -> grader, on the reply socket: ``{"pid": N}``, then ``{"returncode": N}`` (negative:
  killed by that signal, as ``subprocess`` says it), or ``{"error": "..."}`` when no judge
  could be forked.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import IO, Any

from grader.errors import InfrastructureError

MAX_REQUEST_BYTES = 1 << 20
JUDGE_CPUS = 2  # a judge's CPU quota, and its own threads: checks do little computing (grader.grading)
WARM_UP_REQUEST = b'{"warm_up": true}'  # grader -> a light server: more gradings follow (see main)
# Imported by every server before it forks a judge: what a judge runs before it starts its
# workers, and the backends it starts them with. None of them imports torch or numpy.
JUDGE_START_MODULES = ("grader.judge.runner", "harness.backends", "harness.local", "harness.containers")
# Imported once by a warm server, before it forks a judge: what the judge and the hidden checks
# use (a module that is not installed here is skipped).
WARM_MODULES = (
    "numpy", "torch", "torch.nn.functional", "PIL.Image",
    "pytest", "_pytest.python", "_pytest.runner", "_pytest.assertion.rewrite",
    "grader.judge.runner", "grader.judge.plugin", "grader.judge.timing", "grader.judge.paired",
    "grader.judgekit", "harness.session", "harness.local", "harness.containers",
    "pycocotools.coco", "pycocotools.cocoeval",
)
EXIT_JUDGE_FAILED = 3


# --- the server (runs in the warm process) ------------------------------------------------------

def _import(modules: tuple[str, ...]) -> None:
    import importlib

    for name in modules:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def serve(control: socket.socket) -> None:
    """Fork a judge for every request on ``control`` until the grader's end of it closes."""
    selector = selectors.EpollSelector()  # Linux: the judges are reaped through pidfds
    selector.register(control, selectors.EVENT_READ, None)
    running: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, reply socket)
    while True:
        for key, _ in selector.select():
            if key.data is None:
                try:
                    message, fds, _, _ = socket.recv_fds(control, MAX_REQUEST_BYTES, 3)
                except OSError:
                    message = b""
                if not message:
                    return  # the grader is gone
                if message == WARM_UP_REQUEST and not fds:
                    _warm_up()  # a light server told that more gradings follow
                    continue
                forked = _fork_judge(message, fds, control, selector, running)
                if forked is not None:
                    pidfd, pid, reply = forked
                    running[pidfd] = (pid, reply)
                    selector.register(pidfd, selectors.EVENT_READ, pid)
            else:
                pidfd = key.fd
                pid, reply = running.pop(pidfd)
                selector.unregister(pidfd)
                os.close(pidfd)
                _, status = os.waitpid(pid, 0)
                with contextlib.suppress(OSError):
                    reply.send(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}).encode())
                reply.close()


def _fork_judge(
    message: bytes, fds: list[int], control: socket.socket, selector: selectors.EpollSelector,
    running: dict[int, tuple[int, socket.socket]],
) -> tuple[int, int, socket.socket] | None:
    if len(fds) != 3:
        for fd in fds:
            os.close(fd)
        return None
    reply = socket.socket(fileno=fds[0])
    try:
        request = json.loads(message)
        spec, cwd, env = str(request["spec"]), str(request["cwd"]), dict(request["env"])
        cgroup_procs = [str(path) for path in request["cgroup_procs"]]
    except (ValueError, KeyError, TypeError) as err:
        with contextlib.suppress(OSError):
            reply.send(json.dumps({"error": f"a malformed request: {err}"}).encode())
        reply.close()
        for fd in fds[1:]:
            os.close(fd)
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the judge
        own = {control.fileno(), selector.fileno(), reply.fileno()}
        for pidfd, (_, other) in running.items():
            own |= {pidfd, other.fileno()}
        _become_judge(spec, cwd, env, cgroup_procs, stdin=fds[1], log=fds[2], close=own)
    os.close(fds[1])
    os.close(fds[2])
    pidfd = os.pidfd_open(pid)
    with contextlib.suppress(OSError):
        reply.send(json.dumps({"pid": pid}).encode())
    return pidfd, pid, reply


def _become_judge(
    spec: str, cwd: str, env: dict[str, str], cgroup_procs: list[str], *, stdin: int, log: int, close: set[int],
) -> None:
    """In the forked child: the judge's own session, cgroup, descriptors, folder and environment; then judge."""
    code = EXIT_JUDGE_FAILED
    try:
        os.setsid()
        for fd in close:
            with contextlib.suppress(OSError):
                os.close(fd)
        os.dup2(stdin, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(stdin)
        os.close(log)
        for path in cgroup_procs:  # before anything of the grading runs, as a cold judge's shell does
            Path(path).write_text(str(os.getpid()))
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        tempfile.tempdir = None  # the grading's TMPDIR, not the one the server saw when it started
        _fresh_random_state()
        from grader.judge.runner import judge_main

        code = judge_main(Path(spec))
    except SystemExit as stop:
        code = stop.code if isinstance(stop.code, int) else EXIT_JUDGE_FAILED
    except BaseException as err:
        with contextlib.suppress(Exception):
            print(f"cvgrade judge: {type(err).__name__}: {err}", file=sys.stderr, flush=True)
    finally:
        with contextlib.suppress(BaseException):
            atexit._run_exitfuncs()
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _fresh_random_state() -> None:
    """numpy's global generator as a fresh process would have it: never shared between judges.

    Python's ``random`` reseeds itself after a fork; torch's default generator starts from the
    same fixed seed in every process anyway.
    """
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed()


def main() -> None:
    """``python -I -m grader.judge.forkserver FD [warm|light]``: serve the grader on the socket ``FD``.

    ``warm`` (the default) imports torch, numpy and pytest before it serves. ``light`` serves at once
    and imports them only when the grader says more gradings follow (``{"warm_up": true}``): for a
    grader with a single grading, whose judge imports them itself while its workers start (as a
    cold judge does, without a fresh interpreter's start), instead of its workers waiting for the
    server's imports.
    """
    control = socket.socket(fileno=int(sys.argv[1]))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the grader's to handle: it stops the judges
    _import(JUDGE_START_MODULES)
    if (sys.argv[2] if len(sys.argv) > 2 else "warm") == "warm":
        _warm_up()
    serve(control)


def _warm_up() -> None:
    _import(WARM_MODULES)
    if threading.active_count() != 1:  # the grader's next fork finds the server gone and starts a new one
        print("cvgrade fork server: threads started while warming up; forking is not safe", file=sys.stderr)
        sys.exit(EXIT_JUDGE_FAILED)


# --- the client (runs in the grader) ------------------------------------------------------------

class ForkedJudge:
    """A judge forked by the server, seen from the grader like a ``subprocess.Popen``.

    ``pid``, ``stdin`` (the write end of the watch pipe: only the grader holds it), ``poll()``
    and ``wait(timeout)``. The judge is not the grader's child: its exit code comes from the
    server, over this judge's own reply socket.
    """

    def __init__(self, pid: int, reply: socket.socket, stdin: IO[bytes]) -> None:
        self.pid = pid
        self.stdin: IO[bytes] | None = stdin
        self.returncode: int | None = None
        self._reply = reply

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(timeout=0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        self._reply.settimeout(timeout)
        try:
            message = self._reply.recv(MAX_REQUEST_BYTES)
        except (TimeoutError, BlockingIOError):
            raise subprocess.TimeoutExpired(["cvgrade judge"], timeout or 0.0) from None
        reply = json.loads(message) if message else {}
        if "returncode" not in reply:  # the server went away: its judge is gone with it or ends on its own
            self.returncode = EXIT_JUDGE_FAILED
        else:
            self.returncode = int(reply["returncode"])
        self._reply.close()
        return self.returncode


class JudgeForkServer:
    """The grader's handle on its warm judge process: started on first use, shared by its gradings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._control: socket.socket | None = None
        self._warm = True

    def start(self, *, warm: bool = True) -> None:
        """Start the server now (its imports overlap with whatever the caller does next); a no-op when running.

        ``warm``: it imports torch, numpy and pytest once, for all the judges it forks. Else it stays
        light (``main``) until ``warm_up``: the best start for a grader with a single grading.
        """
        with self._lock:
            self._ensure_started(warm=warm)

    def warm_up(self) -> None:
        """Start the server warm, or make a light one import torch, numpy and pytest now: more gradings follow."""
        with self._lock:
            control = self._ensure_started(warm=True)
            if not self._warm:
                with contextlib.suppress(OSError):  # a server that died is started afresh, warm, by fork
                    control.send(WARM_UP_REQUEST)
                self._warm = True

    def fork(self, spec: Path, cwd: Path, env: dict[str, str], cgroup_procs: list[Path], log: IO[bytes]) -> ForkedJudge:
        """A fresh judge for ``spec``; raises ``InfrastructureError`` when none could be forked."""
        read_end, write_end = os.pipe()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        request = json.dumps({"spec": str(spec), "cwd": str(cwd), "env": env,
                              "cgroup_procs": [str(path) for path in cgroup_procs]}).encode()
        try:
            with self._lock:
                for attempt in range(2):  # a server that died (killed, out of memory) is started once more
                    control = self._ensure_started()
                    try:
                        socket.send_fds(control, [request], [theirs.fileno(), read_end, log.fileno()])
                        break
                    except OSError:
                        self._forget()
                        if attempt:
                            raise
        except OSError as err:
            os.close(write_end)
            ours.close()
            raise InfrastructureError(f"the warm judge could not be started: {err}") from err
        finally:
            os.close(read_end)
            theirs.close()
        ours.settimeout(None)
        message = ours.recv(MAX_REQUEST_BYTES)
        reply: dict[str, Any] = json.loads(message) if message else {"error": "the warm judge server ended"}
        if "pid" not in reply:
            os.close(write_end)
            ours.close()
            with self._lock:
                self._forget()
            raise InfrastructureError(f"no judge could be forked: {reply.get('error')}")
        return ForkedJudge(int(reply["pid"]), ours, os.fdopen(write_end, "wb", buffering=0))

    def close(self) -> None:
        with self._lock:
            self._forget()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    @property
    def warm(self) -> bool | None:
        """Whether the running server imports torch for its judges (None: no server is running)."""
        return self._warm if self._process is not None else None

    def _ensure_started(self, *, warm: bool = True) -> socket.socket:
        if self._process is not None and self._process.poll() is None and self._control is not None:
            return self._control
        self._forget()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        env = {key: value for key, value in os.environ.items() if not key.startswith("PYTEST_")}
        env.update(server_environment())
        self._process = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-I", "-m", "grader.judge.forkserver", str(theirs.fileno()), "warm" if warm else "light"],
            pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=env, start_new_session=True,
        )
        theirs.close()
        self._control = ours
        self._warm = warm
        return ours

    def _forget(self) -> None:
        if self._control is not None:
            self._control.close()  # the server's end of the socket reads EOF: it exits
            self._control = None
        if self._process is not None:
            # It may still be importing: no need to wait for that. Its judges are sessions of their
            # own, each ended by its own watch of our pipe, so none goes with it.
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
            self._process.wait()
            self._process = None

    def _forget_in_forked_child(self) -> None:
        """A process forked from ours (a prefork service worker) starts its own server, never shares ours."""
        self._lock = threading.Lock()
        if self._control is not None:
            self._control.close()  # our copy only: the parent's end stays open
        self._control = None
        self._process = None


def server_environment() -> dict[str, str]:
    """What the server needs in its environment before it imports torch (the OpenMP runtime reads it then)."""
    env = {"PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        env[name] = str(JUDGE_CPUS)
    return env


_SHARED = JudgeForkServer()
atexit.register(_SHARED.close)
os.register_at_fork(after_in_child=_SHARED._forget_in_forked_child)


def shared_fork_server() -> JudgeForkServer:
    """This grader process's one fork server."""
    return _SHARED


if __name__ == "__main__":
    main()
