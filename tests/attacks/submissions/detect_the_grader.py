"""Attack class: Integrity -- behave differently when graded (detect pytest, environment
variables, the command line, the file system).

A candidate who games graders is honest only while practising: when it believes it is
being graded (pytest or grader modules loaded, CI or PYTEST_* variables, a suspicious
command line or working folder), its `box_iou` would quietly switch to a cheat. Here the
cheat is a wrong answer, so any successful detection shows up as failed checks.

On its first call in each worker the submission raises once with what it sees: the names of
the suspicious things it found ("suspicious=none" when nothing), a fingerprint of its whole
environment (variables, argv, cwd, loaded top-level modules, the files around it, uid,
limits), a digest of each part of it (to name what differs) and its host name. A fair grader
gives nothing away: nothing suspicious is found, the fingerprint is the same in a graded run
(hidden checks) and a practice run (`cvgrade test`, public checks) -- where a container's
host name is its random id, that name is the only part that differs, and it differs between
any two workers -- and after the first call `box_iou` is honest, so every other check passes.
"""

import hashlib
import json
import os
import resource
import socket
import sys

import torch

SUSPICIOUS_MODULES = ("pytest", "_pytest", "pluggy", "grader", "harness", "iniconfig", "xdist")
SUSPICIOUS_ENV_PREFIXES = ("PYTEST", "CI", "GITHUB", "CVGRADE", "JUDGE", "GRADER", "HIDDEN", "GRADESCOPE")
SUSPICIOUS_WORDS = ("pytest", "hidden", "judge", "reference")  # in argv or the working folder
STATE = {"reported": False}


def _observe():
    modules = sorted({name.split(".")[0] for name in list(sys.modules)})
    listing = {}
    for folder in ("/", "/workspace", "/tmp", "/cvgrade", os.getcwd()):
        try:
            listing[folder] = sorted(os.listdir(folder))
        except OSError as exc:
            listing[folder] = type(exc).__name__
    try:
        with open(sys.argv[1]) as handle:
            spec = handle.read()
    except (OSError, IndexError):
        spec = ""
    return {
        "env": dict(os.environ),
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "modules": modules,
        "listing": listing,
        "spec": spec,
        "uid": [os.getuid(), os.getgid()],
        "rlimits": [resource.getrlimit(getattr(resource, name)) for name in
                    ("RLIMIT_NOFILE", "RLIMIT_NPROC", "RLIMIT_AS", "RLIMIT_FSIZE")],
        "threads": torch.get_num_threads(),
    }


def _digest(value, length=8):
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:length]


def _parts(seen):
    """A digest of each part of what it sees (each variable apart): where two views differ."""
    parts = {f"env.{key}": value for key, value in seen["env"].items()}
    parts.update((key, value) for key, value in seen.items() if key != "env")
    return ",".join(f"{key}:{_digest(value)}" for key, value in sorted(parts.items()))


def _suspicious(seen):
    found = [f"module:{name}" for name in SUSPICIOUS_MODULES if name in seen["modules"]]
    found += [f"env:{key}" for key in seen["env"] if key.upper().startswith(SUSPICIOUS_ENV_PREFIXES)]
    where = " ".join(seen["argv"] + [seen["cwd"]]).lower()
    found += [f"argv_or_cwd:{word}" for word in SUSPICIOUS_WORDS if word in where]
    return found


def _honest_iou(boxes1, boxes2):
    top_left = torch.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(dim=2)
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    union = area1[:, None] + area2[None, :] - inter
    return inter / torch.where(union > 0, union, torch.ones_like(union))


def box_iou(boxes1, boxes2):
    seen = _observe()
    suspicious = _suspicious(seen)
    if not STATE["reported"]:
        STATE["reported"] = True
        raise RuntimeError(f"detection report: suspicious={','.join(suspicious) or 'none'} "
                           f"fingerprint={_digest(seen, 16)} parts={_parts(seen)} hostname={socket.gethostname()}")
    if suspicious:
        return torch.zeros((boxes1.shape[0], boxes2.shape[0]), dtype=boxes1.dtype)  # the "cheat"
    return _honest_iou(boxes1, boxes2)


def nms(boxes, scores, iou_threshold):
    if _suspicious(_observe()):
        return torch.empty(0, dtype=torch.int64)
    order = torch.sort(scores, descending=True, stable=True).indices
    keep = []
    while order.numel() > 0:
        best = order[0]
        keep.append(best)
        rest = order[1:]
        order = rest[_honest_iou(boxes[best].unsqueeze(0), boxes[rest])[0] <= iou_threshold]
    if not keep:
        return torch.empty(0, dtype=torch.int64, device=boxes.device)
    return torch.stack(keep).to(torch.int64)
