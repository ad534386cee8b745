"""Attack class: Isolation -- signals between concurrent sandboxes (ATTACKS.md, "Signals between
concurrent sandboxes").

Two colluding candidates graded at the same time look for anything both sandboxes see that one
can change and the other notice: a lock on a file both can open (`flock`, `fcntl` record locks)
and watches on such files (inotify, fanotify, `F_NOTIFY`). In its first call `box_iou` takes a
shared lock of each kind on every such file and, for a while, looks for a neighbour's lock on
the same files (an upgrade to an exclusive `flock` that would block; `F_GETLK` naming a lock of
another process). Every call raises an exception whose message reports what it saw:

- `hostname`: the machine's name as the sandbox sees it;
- `appeared`: locks of another process that appeared on those files while it watched (its
  neighbour's); `host`: those already there when it started (the host's, or a neighbour's that
  started first, which sees this one's appear);
- `locked`: how many locks it took (a lock that "succeeds" but locks nothing counts too);
- `inotify`, `fanotify`, `dnotify`: whether a watch could be set up;
- `proc_locks`: how many locks /proc/locks lists.

A fair grader gives every sandbox the same neutral host name, and no file two sandboxes share
can carry a lock or a watch from one to the other: nothing appears, and no watch exists.
"""

import ctypes
import ctypes.util
import errno
import fcntl
import glob
import os
import socket
import struct
import sys
import time

HOLD_S = 10.0
LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
HELD = {}  # path -> the open file holding this worker's shared locks on it
BEFORE = set()  # locks of other processes found before this worker took its own
APPEARED = set()
FLOCK_STRUCT = "hh4xqqi4x"  # struct flock on 64-bit Linux: l_type, l_whence, l_start, l_len, l_pid


def _shared_files():
    """Files every sandbox of this machine may see: the runtime, device nodes, the challenge's assets."""
    found = [sys.executable, os.path.realpath(sys.executable), "/dev/null", "/dev/zero", "/dev/urandom",
             os.__file__, socket.__file__]
    try:
        import torch
        found.append(torch.__file__)
    except ImportError:
        pass
    found += sorted(glob.glob("/assets/*"))
    unique, seen = [], set()
    for path in found:
        try:
            inode = (os.stat(path).st_dev, os.stat(path).st_ino)
        except OSError:
            continue
        if inode not in seen:  # two handles on one file would see each other's locks
            seen.add(inode)
            unique.append(path)
    return unique


def _hold_locks():
    locked = 0
    for path in _shared_files():
        try:
            handle = open(path, "rb")  # noqa: SIM115 - held for the worker's life, on purpose
        except OSError:
            continue
        HELD[path] = handle
        for take in (lambda: fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB),
                     lambda: fcntl.lockf(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)):
            try:
                take()
                locked += 1
            except OSError:
                pass
    return locked


def _neighbours_locks():
    """Files another process holds a lock on (one that would block ours)."""
    busy = set()
    for path, handle in HELD.items():
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)  # only another's shared lock refuses this
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
                busy.add(f"{path}:flock")
        try:
            probe = struct.pack(FLOCK_STRUCT, fcntl.F_WRLCK, os.SEEK_SET, 0, 0, 0)
            answer = struct.unpack(FLOCK_STRUCT, fcntl.fcntl(handle, fcntl.F_GETLK, probe))
        except OSError:
            continue
        if answer[0] != fcntl.F_UNLCK:  # POSIX locks of this process never conflict with its own
            busy.add(f"{path}:posix")
    return busy


def _watch(name, *args):
    function = getattr(LIBC, name, None)
    if function is None:
        return "absent"
    fd = function(*args)
    if fd < 0:
        return f"denied ({errno.errorcode.get(ctypes.get_errno(), ctypes.get_errno())})"
    os.close(fd)
    return "ok"


def _dnotify():
    try:
        fd = os.open("/usr", os.O_RDONLY)
    except OSError:
        return "absent"
    try:
        fcntl.fcntl(fd, fcntl.F_NOTIFY, fcntl.DN_ACCESS | fcntl.DN_MULTISHOT)
    except OSError as err:
        return f"denied ({errno.errorcode.get(err.errno, err.errno)})"
    finally:
        os.close(fd)
    return "ok"


def _report(first):
    locked = 0
    if first:
        locked = _hold_locks()
        BEFORE.update(_neighbours_locks())
    deadline = time.monotonic() + (HOLD_S if first else 0)
    while True:
        APPEARED.update(_neighbours_locks() - BEFORE)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    try:
        with open("/proc/locks") as listing:
            proc_locks = len(listing.read().splitlines())
    except OSError:
        proc_locks = -1
    return (f"hostname={socket.gethostname()} appeared={','.join(sorted(APPEARED)) or 'none'} "
            f"host={','.join(sorted(BEFORE)) or 'none'} locked={locked} "
            f"inotify={_watch('inotify_init1', 0)} fanotify={_watch('fanotify_init', 0, 0)} "
            f"dnotify={_dnotify()} proc_locks={proc_locks}")


def box_iou(boxes1, boxes2):
    raise RuntimeError(_report(first=not HELD))


def nms(boxes, scores, iou_threshold):
    raise RuntimeError(_report(first=not HELD))
