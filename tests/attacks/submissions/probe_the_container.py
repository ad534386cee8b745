"""Attack class: Isolation -- the Docker socket or the host anywhere near candidate code; writes
outside scratch; the host's processes; the network (ATTACKS.md, "Isolation", "Exfiltrate over
the network", "Read hidden checks ... from /proc").

Written for a sandbox that is a container. The first call to `box_iou` looks at every wall of
its box and raises with a report, one "name: value" per line; `nms` raises too:

- writes to the root file system and the folders mounted into the sandbox (`/etc`, `/usr`,
  `/opt`, `/var/tmp`, `/`, `/etc/hosts`, `/dev`, `/workspace`, `/cvgrade`) and to its own cgroup (raise
  `memory.max`, move a process, make a child cgroup), against one write to its scratch (`/tmp`);
- every mount that is writable (from `/proc/self/mountinfo`);
- the processes it can see, `/proc/1`'s command line and owner;
- every Unix socket it can find on disk (a walk of `/`) and in `/proc/net/unix` (abstract
  ones included), the usual places of the Docker and containerd sockets, environment
  variables naming Docker, and a connection to every socket file found: the judge's channel
  socket must refuse a second connection, and nothing else may be there;
- the network interfaces and routes (read only: it sends nothing anywhere).

A fair grader gives the worker a read-only root and read-only mounts with scratch on a
private tmpfs, shows it only its own container's processes (`/proc/1` is the container's init,
running as the same unprivileged user), no socket but the judge's channel (which accepts
one connection: the worker's own), no Docker variable, no interface but loopback and no
route: every check scores 0 (each raises the report).
"""

import errno
import os
import socket
import stat

REPORT = []
SOCKET_PLACES = ("/var/run/docker.sock", "/run/docker.sock", "/run/containerd/containerd.sock",
                 "/var/run/docker/containerd/containerd.sock", "/run/podman/podman.sock")


def _err(exc):
    return f"denied ({errno.errorcode.get(exc.errno, exc.errno) if exc.errno else type(exc).__name__})"


def _write(path):
    try:
        with open(path, "w") as handle:
            handle.write("pwned")
    except OSError as exc:
        return _err(exc)
    return "ok"


def _mkdir(path):
    try:
        os.mkdir(path)
    except OSError as exc:
        return _err(exc)
    return "ok"


def _read(path, limit=4000):
    try:
        with open(path, "rb") as handle:
            return handle.read(limit).decode("utf-8", "replace")
    except OSError as exc:
        return f"<{_err(exc)}>"


def _writable_mounts():
    found = []
    for line in _read("/proc/self/mountinfo", 1_000_000).splitlines():
        fields = line.split()
        if len(fields) > 5 and "rw" in fields[5].split(","):
            found.append(fields[4])
    return sorted(found)


def _processes():
    seen = []
    for entry in sorted(os.listdir("/proc")):
        if entry.isdigit():
            name = _read(f"/proc/{entry}/cmdline").split("\0")[0] or "?"
            seen.append(f"{entry}={os.path.basename(name)}")
    return seen


def _owner(pid):
    for line in _read(f"/proc/{pid}/status").splitlines():
        if line.startswith("Uid:"):
            return line.split()[1]
    return "?"


def _socket_files():
    found = []
    for root, folders, files in os.walk("/", followlinks=False):
        folders[:] = [f for f in folders if os.path.join(root, f) not in ("/proc", "/sys")]
        for name in files + folders:
            path = os.path.join(root, name)
            try:
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    found.append(path)
            except OSError:
                pass
    return sorted(found)


def _unix_sockets_in_namespace():
    paths = []
    for line in _read("/proc/net/unix", 1_000_000).splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 8:
            paths.append(fields[7])
    return sorted(set(paths))


def _connect(path):
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(2)
    try:
        client.connect(path)
    except OSError as exc:
        return _err(exc)
    finally:
        client.close()
    return "ok"


def _routes():
    lines = _read("/proc/net/route").splitlines()[1:]
    return [line.split()[0] for line in lines if line.split()]


def probe():
    sockets = _socket_files()
    report = {
        "write_etc": _write("/etc/cvgrade-pwned"),
        "write_usr": _write("/usr/cvgrade-pwned"),
        "write_opt": _write("/opt/cvgrade/cvgrade-pwned"),
        "write_var_tmp": _write("/var/tmp/cvgrade-pwned"),
        "write_etc_hosts": _write("/etc/hosts"),
        "write_dev": _write("/dev/cvgrade-pwned"),
        "write_root": _write("/cvgrade-pwned"),
        "write_workspace": _write("/workspace/cvgrade-pwned"),
        "write_control": _write("/cvgrade/cvgrade-pwned"),
        "write_cgroup_memory_max": _write("/sys/fs/cgroup/memory.max"),
        "write_cgroup_procs": _write("/sys/fs/cgroup/cgroup.procs"),
        "mkdir_cgroup": _mkdir("/sys/fs/cgroup/cvgrade-pwned"),
        "write_scratch": _write("/tmp/cvgrade-scratch"),
        "writable_mounts": ",".join(_writable_mounts()),
        "processes": ",".join(_processes()),
        "pid1_cmdline": _read("/proc/1/cmdline").replace("\0", " ").strip(),
        "pid1_uid": _owner(1),
        "my_uid": str(os.getuid()),
        "socket_files": ",".join(sockets) or "none",
        "namespace_unix_sockets": ",".join(_unix_sockets_in_namespace()) or "none",
        "docker_env": ",".join(key for key in os.environ if "DOCKER" in key.upper()) or "none",
        "interfaces": ",".join(name for _, name in socket.if_nameindex()),
        "routes": ",".join(_routes()) or "none",
    }
    for place in SOCKET_PLACES:
        report[f"exists {place}"] = str(os.path.lexists(place))
    for path in sockets:
        report[f"connect {path}"] = _connect(path)
    return "\n".join(f"{name}: {value}" for name, value in report.items())


def box_iou(boxes1, boxes2):
    if not REPORT:
        REPORT.append(probe())
    raise PermissionError("container report\n" + REPORT[0] + "\nend of report")


def nms(boxes, scores, iou_threshold):
    raise PermissionError("see box_iou")
