"""Can this service grade? The sandbox backend checked at start (``cvgrade serve`` refuses to start without
one) and again behind ``/health`` (which says ``degraded`` when it is gone), and the plain sentence a team
reads when a grading finds it gone. The detail (the engine's own error) goes to the log, not to the team.

``auto`` picks Docker where an engine answers and the runtime image is built,
else the local sandbox; ``chosen`` says which it picked.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from api.config import Settings

log = logging.getLogger("cvgrade.api")
RECHECK_S = 30.0


@dataclass(frozen=True)
class BackendState:
    backend: str  # what the settings ask for: auto, docker, local (fleet: the workers grade)
    chosen: str | None  # what grades: docker or local; None when nothing can
    ready: bool
    problem: str | None  # a plain sentence for the team; None when ready
    detail: str | None  # the sandbox's own error, for the log


def probe(settings: Settings) -> BackendState:
    """Try to make the configured sandbox now (an engine ping, the image, bubblewrap): never raises."""
    if settings.broker_url:
        return BackendState("fleet", None, True, None, None)  # gradings run on `cvgrade worker` hosts
    from harness.backends import make_sandbox
    from harness.sandbox import SandboxConfig

    config = SandboxConfig(backend=settings.backend, isolation=settings.isolation)
    try:
        chosen = str(make_sandbox(config).describe()["backend"])
    except Exception as err:  # SandboxUnavailable, and whatever an engine's SDK raises besides
        detail = f"{type(err).__name__}: {err}"
        return BackendState(settings.backend, None, False, plain_problem(settings.backend, detail), detail)
    return BackendState(settings.backend, chosen, True, None, None)


def plain_problem(backend: str, detail: str) -> str:
    """What a team needs to know of a sandbox failure, without the engine's traceback words."""
    if "Docker engine" in detail:
        cause = "no Docker engine answers"
    elif "runtime image" in detail:
        cause = "the Docker runtime image is missing or out of date (`cvgrade image build`)"
    elif "GPU" in detail:
        cause = "the challenge needs a GPU this server does not have"
    elif "bubblewrap" in detail.lower() or "bwrap" in detail:
        cause = "the local sandbox (bubblewrap) cannot start"
    else:
        cause = "the sandbox cannot start"
    return (f"grading is not possible on this server right now: {cause} ({backend} backend); the operator finds "
            "the detail in the service's log")


class BackendMonitor:
    """The backend's state, checked at most every ``RECHECK_S`` (``/health`` may be polled often)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._state: BackendState | None = None
        self._checked_at = 0.0

    def state(self) -> BackendState:
        with self._lock:
            if self._state is None or time.monotonic() - self._checked_at > RECHECK_S:
                previous, self._state = self._state, probe(self.settings)
                self._checked_at = time.monotonic()
                if not self._state.ready and (previous is None or previous.ready):
                    log.error("grading backend unavailable: %s", self._state.detail)
                elif self._state.ready and previous is not None and not previous.ready:
                    log.info("grading backend available again: %s", self._state.chosen)
            return self._state
