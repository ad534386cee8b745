"""Seccomp filters: the system calls a submission never needs, and those that would signal a neighbour.

Bubblewrap installs it (``--seccomp FD``) just before it runs the worker. It
denies with ``EPERM`` what lets a process leave or reshape its sandbox, or talk
to other sandboxes behind the kernel's back: new namespaces (``unshare``,
``setns``, ``clone`` with namespace flags), mounts, the kernel keyrings (shared
by every process of a uid), ``ptrace`` and cross-process memory access,
``bpf``, ``perf_event_open``, ``userfaultfd``, modules, ``kexec``, clocks,
swap and reboot. ``clone3`` answers ``ENOSYS`` so that the C library falls
back to ``clone``, whose flags the filter can see. Any other architecture than
the one the filter was built for is killed, as are x32 system calls.

Two sandboxes share inodes (the runtime under ``/usr`` and the Python
installation, ``/dev/null``, a challenge's assets), and a lock or a watch on a
shared inode is a signal from one to the other. So file locks are no-ops that
succeed (``flock`` and ``fcntl``'s ``F_SETLK``, ``F_SETLKW``, ``F_OFD_SETLK``,
``F_OFD_SETLKW`` return 0 and lock nothing: no process in a sandbox holds a
lock another can see, and libraries that lock their own caches still work),
``fcntl``'s ``F_NOTIFY`` and ``F_SETLEASE`` are denied, and inotify and
fanotify are not there (``ENOSYS``, ``EPERM``). Even a lock on a file of its own
would be a signal: ``/proc/locks`` lists open file description locks of every
process, whatever its namespace. ``sched_setaffinity`` succeeds without effect:
the cores a worker runs on are set from outside (``harness/cores.py``).

These last rules are also a filter of their own (``build_worker_filter``), which
the worker installs on itself before it imports the submission, in every
backend: a container's profile is the engine's, and filters stack.

The program is classic BPF, built here from a table of syscall numbers: the
same policy as Docker's default profile for what matters to us, without a
dependency on libseccomp.
"""

from __future__ import annotations

import errno
import platform
import struct

# linux/audit.h
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_X32_SYSCALL_BIT = 0x40000000

# Namespace flags of clone(2)/unshare(2): NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME.
CLONE_NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 \
    | 0x40000000 | 0x00000080

DENIED_NAMES = (
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "open_tree", "move_mount",
    "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr",
    "keyctl", "add_key", "request_key",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp",
    "bpf", "perf_event_open", "userfaultfd",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    "swapon", "swapoff", "reboot", "acct", "quotactl", "vhangup",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
)
ABSENT_NAMES = ("inotify_init", "inotify_init1")  # answer ENOSYS
# Succeed without doing anything: file locks (below), and CPU affinity, which the sandbox is given
# from outside (harness/cores.py) and may not widen where no cpuset enforces it.
NO_OP_NAMES = ("flock", "sched_setaffinity")

# fcntl(2) commands: record locks succeed without locking; notification and leases are denied.
FCNTL_NO_OP_COMMANDS = (6, 7, 37, 38)  # F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW
FCNTL_DENIED_COMMANDS = (1024, 1026)  # F_SETLEASE, F_NOTIFY

_SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "unshare": 272, "setns": 308, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442, "keyctl": 250, "add_key": 248, "request_key": 249,
        "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "kcmp": 312, "bpf": 321,
        "perf_event_open": 298, "userfaultfd": 323, "init_module": 175, "finit_module": 313,
        "delete_module": 176, "kexec_load": 246, "kexec_file_load": 320, "settimeofday": 164,
        "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159, "swapon": 167, "swapoff": 168,
        "reboot": 169, "acct": 163, "quotactl": 179, "vhangup": 153, "open_by_handle_at": 304,
        "name_to_handle_at": 303, "lookup_dcookie": 212, "clone": 56, "clone3": 435,
        "fanotify_init": 300, "inotify_init": 253, "inotify_init1": 294, "flock": 73, "fcntl": 72,
        "sched_setaffinity": 203,
    },
    "aarch64": {
        "unshare": 97, "setns": 268, "mount": 40, "umount2": 39, "pivot_root": 41, "chroot": 51,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442, "keyctl": 219, "add_key": 217, "request_key": 218,
        "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "kcmp": 272, "bpf": 280,
        "perf_event_open": 241, "userfaultfd": 282, "init_module": 105, "finit_module": 273,
        "delete_module": 106, "kexec_load": 104, "kexec_file_load": 294, "settimeofday": 170,
        "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171, "swapon": 224, "swapoff": 225,
        "reboot": 142, "acct": 89, "quotactl": 60, "vhangup": 58, "open_by_handle_at": 265,
        "name_to_handle_at": 264, "lookup_dcookie": 18, "clone": 220, "clone3": 435,
        "fanotify_init": 262, "inotify_init1": 26, "flock": 32, "fcntl": 25, "sched_setaffinity": 122,
    },
}

# Classic BPF opcodes (linux/filter.h) and seccomp return values.
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_SECCOMP_RET_ALLOW = 0x7FFF0000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_KILL_PROCESS = 0x80000000
_OFFSET_NR = 0
_OFFSET_ARCH = 4
_OFFSET_ARG0_LOW = 16  # seccomp_data.args[0], low 32 bits on little-endian machines
_OFFSET_ARG1_LOW = 24  # seccomp_data.args[1], low 32 bits


def supported() -> bool:
    """Whether a filter can be built for this machine's architecture."""
    return platform.machine() in _SYSCALLS


def _stmt(code: int, k: int) -> tuple[int, int, int, int]:
    return (code, 0, 0, k)


def _jump(code: int, k: int, if_true: int, if_false: int) -> tuple[int, int, int, int]:
    return (code, if_true, if_false, k)


def build_filter(machine: str | None = None) -> bytes:
    """The local sandbox's filter as bytes, ready for ``bwrap --seccomp FD``: everything above."""
    arch, numbers = _table(machine)
    eperm = _SECCOMP_RET_ERRNO | errno.EPERM
    program = _architecture_checks(arch) + _neutral_rules(numbers)
    # clone3 passes its flags in memory the filter cannot read: make the C library fall back to clone.
    program += [_jump(_JEQ_K, numbers["clone3"], 0, 1), _stmt(_RET_K, _SECCOMP_RET_ERRNO | errno.ENOSYS)]
    # clone with any namespace flag is denied; plain clone (threads, fork) is allowed.
    program += [
        _jump(_JEQ_K, numbers["clone"], 0, 4),
        _stmt(_LD_W_ABS, _OFFSET_ARG0_LOW),
        _jump(_JSET_K, CLONE_NAMESPACE_FLAGS, 0, 1),
        _stmt(_RET_K, eperm),
        _stmt(_RET_K, _SECCOMP_RET_ALLOW),
    ]
    for number in sorted({numbers[name] for name in DENIED_NAMES}):
        program += [_jump(_JEQ_K, number, 0, 1), _stmt(_RET_K, eperm)]
    program.append(_stmt(_RET_K, _SECCOMP_RET_ALLOW))
    return _assemble(program)


def build_worker_filter(machine: str | None = None) -> bytes:
    """The part every backend needs: file locks, watches and CPU affinity made inert (see above).

    The worker installs it on itself before it imports the submission (filters stack: a
    container's own profile stays in force), so a Docker sandbox gets it as the local one does.
    """
    arch, numbers = _table(machine)
    return _assemble([*_architecture_checks(arch), *_neutral_rules(numbers), _stmt(_RET_K, _SECCOMP_RET_ALLOW)])


Instruction = tuple[int, int, int, int]


def _table(machine: str | None) -> tuple[str, dict[str, int]]:
    arch = machine or platform.machine()
    if arch not in _SYSCALLS:
        raise ValueError(f"no seccomp syscall table for {arch}")
    return arch, _SYSCALLS[arch]


def _architecture_checks(arch: str) -> list[Instruction]:
    """Kill any call of another architecture, and x32 calls; leave the syscall number loaded."""
    program = [
        _stmt(_LD_W_ABS, _OFFSET_ARCH),
        _jump(_JEQ_K, _AUDIT_ARCH[arch], 1, 0),
        _stmt(_RET_K, _SECCOMP_RET_KILL_PROCESS),
        _stmt(_LD_W_ABS, _OFFSET_NR),
    ]
    if arch == "x86_64":
        program += [_jump(_JGE_K, _X32_SYSCALL_BIT, 0, 1), _stmt(_RET_K, _SECCOMP_RET_KILL_PROCESS)]
    return program


def _neutral_rules(numbers: dict[str, int]) -> list[Instruction]:
    """Locks succeed and lock nothing, watches are not there, affinity is not ours to change.

    Expects the syscall number loaded, and leaves it loaded for calls it does not answer.
    """
    no_op = _SECCOMP_RET_ERRNO | 0  # the call is skipped and returns 0
    eperm = _SECCOMP_RET_ERRNO | errno.EPERM
    program: list[Instruction] = []
    for name in ABSENT_NAMES:
        if name in numbers:  # aarch64 has no inotify_init
            program += [_jump(_JEQ_K, numbers[name], 0, 1), _stmt(_RET_K, _SECCOMP_RET_ERRNO | errno.ENOSYS)]
    program += [_jump(_JEQ_K, numbers["fanotify_init"], 0, 1), _stmt(_RET_K, eperm)]
    for name in NO_OP_NAMES:
        program += [_jump(_JEQ_K, numbers[name], 0, 1), _stmt(_RET_K, no_op)]
    commands = [(command, no_op) for command in FCNTL_NO_OP_COMMANDS]
    commands += [(command, eperm) for command in FCNTL_DENIED_COMMANDS]
    program += [_jump(_JEQ_K, numbers["fcntl"], 0, 2 * len(commands) + 2), _stmt(_LD_W_ABS, _OFFSET_ARG1_LOW)]
    for command, answer in commands:
        program += [_jump(_JEQ_K, command, 0, 1), _stmt(_RET_K, answer)]
    program.append(_stmt(_RET_K, _SECCOMP_RET_ALLOW))  # any other fcntl command
    return program


def _assemble(program: list[Instruction]) -> bytes:
    return b"".join(struct.pack("<HBBI", code, jt, jf, k) for code, jt, jf, k in program)
