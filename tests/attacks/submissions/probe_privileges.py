"""Attack class: Isolation -- root inside the sandbox, capabilities, ptrace, unshare, keyctl,
raw sockets, mounts, the network (ATTACKS.md, "Isolation" and "Exfiltrate over the network");
Fairness -- more CPUs than the limits grant.

The candidate probes for every privilege a container escape starts from and reports, in the
message of the exception `box_iou` raises, which probes succeeded ("name: ok") and which were
refused ("name: denied (ERRNO)"), plus a few facts about the sandbox ("fact name=value").

A fair grader runs the code as an unprivileged user with no capabilities, no_new_privs, no
network but loopback, a read-only view of the runtime and workspace, and kills nothing of
its own when the candidate signals every process it can see. Every privileged probe must
come back "denied" -- except where process 1 is the candidate's own (a container's init,
running as the same user: the facts name its program and owner), which it may signal and
trace as it may any process of its own, to no effect on the grading. Nothing here may reach
outside the machine (the only connection tried is to the sandbox's own loopback). The facts also say on how many CPUs the candidate may run
and how much CPU time per second of wall time a multi-threaded matrix product gets: with
`cpu_threads = 1` a fair grader lets it use one CPU.
"""

import ctypes
import ctypes.util
import errno
import os
import signal
import socket
import time

import torch

LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
CLONE_NEWUSER = 0x10000000
CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
PTRACE_ATTACH = 16
SYS_ADD_KEY = 248  # x86_64
SYS_KEYCTL = 250
KEY_SPEC_SESSION_KEYRING = -3


def _err(code):
    return f"denied ({errno.errorcode.get(code, code)})"


def _in_child(action):
    """Run `action` in a forked child (so unshare & co. cannot disturb this process)."""
    pid = os.fork()
    if pid == 0:
        try:
            code = action()
        except OSError as exc:
            code = exc.errno or 255
        except BaseException:
            code = 255
        os._exit(code if 0 <= code < 256 else 255)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return "ok" if code == 0 else _err(code) if code > 0 else f"denied (signal {-code})"


def _libc_call(name, *args):
    def action():
        ctypes.set_errno(0)
        result = getattr(LIBC, name)(*args)
        return 0 if result >= 0 else ctypes.get_errno() or 255
    return action


def _try(action):
    try:
        action()
    except OSError as exc:
        return _err(exc.errno) if exc.errno else f"denied ({type(exc).__name__})"
    except Exception as exc:  # noqa: BLE001 - any refusal counts as denied
        return f"denied ({type(exc).__name__})"
    return "ok"


def _open_write(path):
    def action():
        with open(path, "w") as handle:
            handle.write("pwned")
    return action


def _open_read(path):
    def action():
        with open(path, "rb") as handle:
            handle.read(1)
    return action


def _raw_socket(family, kind, proto):
    def action():
        socket.socket(family, kind, proto).close()
    return action


def _connect_loopback():
    socket.create_connection(("127.0.0.1", 22), timeout=2).close()


def _kill_init():
    os.kill(1, signal.SIGKILL)


def _userns_then_mount():
    """A new user namespace grants every capability inside it: then mount a file system."""
    ctypes.set_errno(0)
    if LIBC.unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0:
        return ctypes.get_errno() or 255
    if LIBC.mount(b"none", b"/tmp", b"tmpfs", 0, None) != 0:
        return ctypes.get_errno() or 255
    return 0


def _cpu_per_wall():
    """CPU seconds per wall second of a matrix product on as many threads as torch allows."""
    torch.set_num_threads(8)
    matrix = torch.randn(512, 512)
    wall, cpu = time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < 1.0:
        matrix @ matrix
    ratio = (time.process_time() - cpu) / (time.perf_counter() - wall)
    torch.set_num_threads(1)
    return f"{ratio:.2f}"


def _status_field(name, pid="self"):
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return "?"


def _pid1_program():
    with open("/proc/1/cmdline", "rb") as handle:
        return os.path.basename(handle.read().split(b"\0")[0].decode(errors="replace")) or "?"


def probe():
    results = {
        "setuid0": _try(lambda: os.setuid(0)),
        "setgid0": _try(lambda: os.setgid(0)),
        "seteuid0": _try(lambda: os.seteuid(0)),
        "unshare_user": _in_child(_libc_call("unshare", CLONE_NEWUSER)),
        "unshare_mount": _in_child(_libc_call("unshare", CLONE_NEWNS)),
        "unshare_net": _in_child(_libc_call("unshare", CLONE_NEWNET)),
        "ptrace_pid1": _in_child(_libc_call("ptrace", PTRACE_ATTACH, 1, None, None)),
        "keyctl": _in_child(_libc_call("syscall", SYS_ADD_KEY, b"user", b"cvgrade-probe", b"x", 1,
                                       KEY_SPEC_SESSION_KEYRING)),
        "mount_tmpfs": _in_child(_libc_call("mount", b"none", b"/tmp", b"tmpfs", 0, None)),
        "userns_then_mount": _in_child(_userns_then_mount),
        "chroot": _try(lambda: os.chroot("/tmp")),
        "sethostname": _in_child(_libc_call("sethostname", b"pwned", 5)),
        "nice_minus": _try(lambda: os.nice(-5)),
        "kill_pid1": _try(_kill_init),
        "raw_socket": _try(_raw_socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)),
        "packet_socket": _try(_raw_socket(socket.AF_PACKET, socket.SOCK_RAW, 0)),
        "connect_loopback_22": _try(_connect_loopback),
        "write_usr": _try(_open_write("/usr/pwned")),
        "write_workspace": _try(_open_write("/workspace/pwned")),
        "write_runtime": _try(_open_write(os.path.join(os.path.dirname(os.__file__), "pwned.py"))),
        "read_shadow": _try(_open_read("/etc/shadow")),
        "read_dev_mem": _try(_open_read("/dev/mem")),
        "read_kmsg": _try(_open_read("/dev/kmsg")),
        "docker_socket": _try(_open_read("/var/run/docker.sock")),
        "read_pid1_mem": _try(_open_read("/proc/1/mem")),
    }
    facts = {
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "CapEff": _status_field("CapEff"),
        "CapBnd": _status_field("CapBnd"),
        "NoNewPrivs": _status_field("NoNewPrivs"),
        "Seccomp": _status_field("Seccomp"),
        "interfaces": ",".join(name for _, name in socket.if_nameindex()),
        "pid1_program": _pid1_program(),
        "pid1_uid": _status_field("Uid", 1).split()[0],
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "cpu_per_wall": _cpu_per_wall(),
    }
    lines = [f"{name}: {outcome}" for name, outcome in results.items()]
    lines += [f"fact {name}={value}" for name, value in facts.items()]
    return "\n".join(lines)


REPORT = []


def box_iou(boxes1, boxes2):
    if not REPORT:
        REPORT.append(probe())
    raise PermissionError("privilege report\n" + REPORT[0])


def nms(boxes, scores, iou_threshold):
    raise PermissionError("see box_iou")
