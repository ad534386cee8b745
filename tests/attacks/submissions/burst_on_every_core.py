"""Attack class: Fairness -- more CPU than granted (ATTACKS.md, "More CPU than granted").

A CPU quota is not a pin: work in short bursts on every core of the host stays under a quota
of one CPU's time per period, and runs faster than on one core. Every call of `box_iou` and
`nms` measures it and reports, in the message of the exception it raises, what it sees:

- `affinity`: the cores it may run on (sched_getaffinity), and `widened`: the same after it
  asked for every core of the machine (sched_setaffinity);
- `speedup`: how much faster the same CPU work runs split over two processes at once than in
  one, best of several rounds (1.0 on one core; up to 2 where two cores are free).

A fair grader pins the worker to `cpu_threads` cores (here 1), which it cannot widen, so a
second process gains nothing; and while a timed check runs (`box_iou_speed`), the worker runs
on cores that no other worker of the grader uses.
"""

import os
import time

ROUNDS = 5
WORK = 300_000  # iterations of a pure Python loop: some 20 to 60 ms on one core


def _spin(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def _burst(processes):
    """Wall time of 2 * WORK iterations split over `processes` forked children, all at once."""
    started = time.perf_counter()
    children = []
    for _ in range(processes):
        pid = os.fork()
        if pid == 0:
            _spin(2 * WORK // processes)
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    return time.perf_counter() - started


def _report():
    affinity = sorted(os.sched_getaffinity(0))
    try:
        os.sched_setaffinity(0, range(os.cpu_count() or 64))
    except OSError as err:
        attempt = f"refused ({err.errno})"
    else:
        attempt = "accepted"
    widened = sorted(os.sched_getaffinity(0))
    one = min(_burst(1) for _ in range(ROUNDS))
    two = min(_burst(2) for _ in range(ROUNDS))
    cores = ",".join(str(core) for core in affinity)
    return (f"affinity={cores} widened={','.join(str(core) for core in widened)} widen_attempt={attempt} "
            f"speedup={one / two:.3f} one_s={one:.4f} two_s={two:.4f} cpu_count={os.cpu_count()}")


def box_iou(boxes1, boxes2):
    raise RuntimeError(_report())


def nms(boxes, scores, iou_threshold):
    raise RuntimeError(_report())
