"""A hostile submission for the sandbox tests (read as text; never imported by the tests)."""

import os
import time


def add(a, b):
    return a + b


def boom():
    raise ValueError("nope")


def exit_quietly():
    os._exit(0)


def segfault():
    import ctypes

    ctypes.string_at(0)


def spin():
    while True:
        pass


def flood():
    while True:
        print("x" * 10000)


def hog():
    blocks = []
    while True:
        blocks.append(bytearray(50_000_000))


def hog_in_a_child_and_wait():
    if os.fork() == 0:
        hog()
    while True:
        time.sleep(1)


def fork_storm():
    count = 0
    children = []
    try:
        while count < 10_000:
            pid = os.fork()
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            children.append(pid)
            count += 1
    except OSError:
        pass
    return count


def start_daemon(marker):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv("/bin/sleep", ["/bin/sleep", marker])
        os._exit(0)
    return True


def listdir(path):
    try:
        return sorted(os.listdir(path))
    except OSError as err:
        return f"error: {err.__class__.__name__}"


def read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read(100).decode("latin-1")
    except OSError as err:
        return f"error: {err.__class__.__name__}"


def environment():
    return dict(os.environ)


def uid():
    return os.getuid()


def interfaces():
    import socket

    return [name for _, name in socket.if_nameindex()]


def fill_scratch(path):
    written = 0
    try:
        with open(path, "wb") as handle:
            while written < 10_000_000_000:
                handle.write(b"x" * 1_000_000)
                written += 1_000_000
    except OSError as err:
        return f"{err.__class__.__name__} after {written} bytes"
    return f"wrote {written} bytes"


def write_file(path):
    try:
        with open(path, "w") as handle:
            handle.write("x")
    except OSError as err:
        return f"error: {err.__class__.__name__}"
    return "ok"


def ignore_sigterm_and_spin():
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        pass


def status():
    with open("/proc/self/status") as handle:
        fields = dict(line.split(":", 1) for line in handle if ":" in line)
    return {key: fields[key].strip() for key in ("CapEff", "CapBnd", "NoNewPrivs", "Seccomp")}


def cuda_available():
    import torch

    return torch.cuda.is_available()
