"""A child Python for work on the candidate's source that our own processes must not do themselves.

Parsing or compiling hostile code can take seconds and hundreds of MB (a 1 MiB file: 1.5 to 6.4 s, up to
495 MiB here). The service's process, which views pages and grades beside it, neither waits behind that
nor grows by it: our script runs in a child ``python -I -S`` (no site, no current folder on its path) with an
empty environment (none of the service's secrets), under a memory and CPU limit and a wall-clock time-out.
It reads its job as JSON on stdin and answers JSON on stdout. The candidate's code is only data to it:
the scripts parse or compile it, never execute it.
"""

from __future__ import annotations

import json
import subprocess
import sys

MEMORY_BYTES = 1024 * 2**20
CPU_S = 20
TIMEOUT_S = 30
# Set inside the child: a preexec_fn is unsafe in a threaded service.
_LIMITS = r"""
import json, resource, sys
memory, cpu = int(sys.argv[1]), int(sys.argv[2])
resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
job = json.load(sys.stdin)
"""


def run_limited(script: str, job: object) -> object | None:
    """Run ``script`` (ours; it finds its input in ``job`` and prints one JSON value) in a child Python
    limited to ``MEMORY_BYTES``, ``CPU_S`` and ``TIMEOUT_S``. Returns that value, or None when the child
    could not finish: a limit, a crash, a time-out, output that is not JSON."""
    try:
        done = subprocess.run(  # noqa: S603  # our own interpreter and script; the candidate's code is data
            [sys.executable, "-I", "-S", "-c", _LIMITS + script, str(MEMORY_BYTES), str(CPU_S)],
            input=json.dumps(job), capture_output=True, text=True, timeout=TIMEOUT_S, check=False, env={},
        )
        return json.loads(done.stdout) if done.returncode == 0 else None
    except (subprocess.TimeoutExpired, ValueError, OSError):
        return None
