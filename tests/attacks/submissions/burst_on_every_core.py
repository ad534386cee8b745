"""Attack class: Fairness -- more CPU than granted (ATTACKS.md, "More CPU than granted").

A CPU quota is not a pin: work in short bursts on every core of the host stays under a quota
of one CPU's time per period, and runs faster than on one core. Every call of `box_iou` and
`nms` measures it and reports, in the message of the exception it raises, what it sees:

- `affinity`: the cores it may run on (sched_getaffinity), and `widened`: the same after it
  asked for every core of the machine (sched_setaffinity);
- `cpu_per_wall`: the most CPU seconds per second of wall time two threads hashing at once
  got, over several rounds (at most 1 on one core; up to 2 where two cores are free), and
  `speedup`: how much faster that work ran on two threads than on one (informative only: on a
  busy core two threads also get two shares of it).

A fair grader pins the worker to `cpu_threads` cores (here 1), which it cannot widen, so a
second thread gains nothing; and while a timed check runs (`box_iou_speed`), the worker runs
on cores that no other worker of the grader uses.
"""

import hashlib
import os
import threading
import time

ROUNDS = 7
CHUNK = bytes(1 << 20)  # hashing releases the GIL: threads run in parallel where cores let them
CHUNKS = 96  # some 50 to 100 ms of hashing on one core


def _hash(chunks):
    digest = hashlib.sha256()
    for _ in range(chunks):
        digest.update(CHUNK)


def _burst(threads):
    """Wall time of hashing CHUNKS megabytes split over `threads` threads, all at once, and the CPU
    seconds the process used per second of it."""
    workers = [threading.Thread(target=_hash, args=(CHUNKS // threads,)) for _ in range(threads)]
    started, cpu_started = time.perf_counter(), time.process_time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    return wall, (time.process_time() - cpu_started) / wall


def _report():
    affinity = sorted(os.sched_getaffinity(0))
    try:
        os.sched_setaffinity(0, range(os.cpu_count() or 64))
    except OSError as err:
        attempt = f"refused ({err.errno})"
    else:
        attempt = "accepted"
    widened = sorted(os.sched_getaffinity(0))
    one = min(_burst(1)[0] for _ in range(ROUNDS))
    bursts = [_burst(2) for _ in range(ROUNDS)]
    two = min(wall for wall, _ in bursts)
    parallel = max(cpu_per_wall for _, cpu_per_wall in bursts)
    cores = ",".join(str(core) for core in affinity)
    return (f"affinity={cores} widened={','.join(str(core) for core in widened)} widen_attempt={attempt} "
            f"cpu_per_wall={parallel:.3f} speedup={one / two:.3f} one_s={one:.4f} two_s={two:.4f} "
            f"cpu_count={os.cpu_count()}")


def box_iou(boxes1, boxes2):
    raise RuntimeError(_report())


def nms(boxes, scores, iou_threshold):
    raise RuntimeError(_report())
