"""The edge lab's plumbing: errors, what a run changed, commands, files, processes, mounts,
network devices and namespaces (read with ip). Shared by lab/lab's modules and
lab/labsystems.py; standard library only."""

import ctypes
import errno
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

VAR = Path("/var/lib/edgelab")
RUN = Path("/run/edgelab")
LOG = Path("/var/log/edgelab")
CACHE = Path("/var/cache/edgelab")
PATH_ENV = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
MARKERS = (str(RUN) + "/", str(VAR) + "/", str(CACHE) + "/")

class LabError(Exception):
    pass


class Changes:
    """What this run changed, so a second `up` can say it changed nothing; `restart` marks a
    daemon started again on what is on disk, `prepare=False` a change outside the edges (an
    image): neither changes what the preparation set."""

    items = []
    outside_preparation = []

    @classmethod
    def add(cls, msg, restart=False, prepare=True):
        cls.items.append(msg)
        if restart or not prepare:
            cls.outside_preparation.append(msg)
        say("  + " + msg)


def say(msg=""):
    print(msg, flush=True)


def warn(msg):
    print("  ! " + msg, file=sys.stderr, flush=True)


def run(cmd, check=True, capture=True, env=None, timeout=120, input=None, stdin=None):
    cmd = [str(c) for c in cmd]
    try:
        proc = subprocess.run(cmd, capture_output=capture, text=True, env=env, timeout=timeout,
                              input=input, stdin=stdin)
    except subprocess.TimeoutExpired as exc:
        raise LabError("timed out after %ss: %s" % (timeout, " ".join(cmd))) from exc
    except FileNotFoundError as exc:
        raise LabError("not found: %s (run `make system`)" % cmd[0]) from exc
    if check and proc.returncode != 0:
        err = (proc.stderr or "").strip() if capture else ""
        raise LabError("command failed (rc=%d): %s%s" % (proc.returncode, " ".join(cmd),
                                                         "\n" + err if err else ""))
    return proc


def daemon_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy", "docker_host")}
    env["PATH"] = PATH_ENV
    env.update(extra or {})
    return env


def write_if_changed(path, content, mode=0o644):
    path = Path(path)
    data = content.encode() if isinstance(content, str) else content
    if path.exists() and path.read_bytes() == data:
        if (path.stat().st_mode & 0o777) != mode:
            os.chmod(path, mode)
        return False
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def ensure_dir(path, mode=0o755):
    path = Path(path)
    if not path.is_dir():
        path.mkdir(parents=True, mode=mode)
    if (path.stat().st_mode & 0o777) != mode:
        os.chmod(path, mode)


# ---------------------------------------------------------------- processes

def proc_alive(pid, marker=None):
    """pid runs (not a zombie) and, if marker is given, its command line contains it."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        if stat[stat.rindex(")") + 2] in "ZX":
            return False
        if marker is None:
            return True
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return marker.encode() in f.read()
    except (OSError, ValueError):
        return False


def read_pid(path):
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_from_file(path, marker):
    pid = read_pid(path)
    return pid if pid and proc_alive(pid, marker) else None


def cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def all_pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def ancestors():
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open("/proc/%d/stat" % pid) as f:
                stat = f.read()
            pid = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError):
            break
    return pids


def netns_inode(path):
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def kill_pids(pids, grace=5.0):
    pids = {p for p in pids if proc_alive(p)}
    for p in pids:
        try:
            os.kill(p, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.time() + grace
    while time.time() < deadline and any(proc_alive(p) for p in pids):
        time.sleep(0.1)
    for p in pids:
        if proc_alive(p):
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.time() + 5
    while time.time() < deadline and any(proc_alive(p) for p in pids):
        time.sleep(0.05)


def cgroup_dirs(name):
    base = Path("/sys/fs/cgroup")
    dirs = []
    if (base / name).is_dir():
        dirs.append(base / name)
    if base.is_dir():
        for ctrl in base.iterdir():
            if (ctrl / name).is_dir():
                dirs.append(ctrl / name)
    return dirs


def cgroup_pids(name):
    pids = set()
    for top in cgroup_dirs(name):
        for root, _dirs, files in os.walk(top):
            if "cgroup.procs" in files:
                try:
                    pids |= {int(x) for x in Path(root, "cgroup.procs").read_text().split()}
                except OSError:
                    pass
    return pids


def remove_cgroups(name):
    removed = 0
    for top in cgroup_dirs(name):
        for root, _dirs, _files in sorted(os.walk(top), key=lambda t: -t[0].count("/")):
            try:
                os.rmdir(root)
                removed += 1
            except OSError:
                pass
    return removed


def spawn_daemon(cmd, log, env=None):
    """Starts cmd detached (own session, stdin /dev/null, output appended to log)."""
    ensure_dir(LOG)
    with open(log, "ab") as out, open(os.devnull, "rb") as devnull:
        out.write(("\n=== %s %s\n" % (time.strftime("%F %T"), " ".join(map(str, cmd)))).encode())
        out.flush()
        proc = subprocess.Popen([str(c) for c in cmd], stdin=devnull, stdout=out, stderr=out,
                                env=env or daemon_env(), start_new_session=True, close_fds=True,
                                cwd="/")
    return proc


def wait_for(check, timeout, interval=0.1):
    deadline = time.time() + timeout
    while True:
        if check():
            return True
        if time.time() >= deadline:
            return False
        time.sleep(interval)


# ---------------------------------------------------------------- mounts

def mounts_under(prefixes):
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4]
            mp = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), mp)
            for p in prefixes:
                p = str(p)
                if mp == p or mp.startswith(p.rstrip("/") + "/"):
                    found.append(mp)
                    break
    return found


def is_mount_point(path):
    """path is a mount point (os.path.ismount misses a bind mount of a directory onto itself)."""
    return str(path) in mounts_under([path])


_libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2


def umount_lazy(path):
    if _libc.umount2(str(path).encode(), MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOENT):
            raise LabError("umount -l %s: %s" % (path, os.strerror(err)))
        return False
    return True


def unmount_all(prefixes):
    """Lazily unmounts every mount under prefixes, deepest first; returns how many."""
    count = 0
    for _ in range(20):
        mps = mounts_under(prefixes)
        if not mps:
            return count
        for mp in sorted(set(mps), key=lambda m: (-m.count("/"), m)):
            if umount_lazy(mp):
                count += 1
    left = mounts_under(prefixes)
    if left:
        raise LabError("could not unmount: %s" % ", ".join(left))
    return count


def safe_rmtree(path):
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return False
    unmount_all([path])
    if mounts_under([path]):
        raise LabError("refusing to remove %s: mounts remain under it" % path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
    return True


def root_is_shared():
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/":
                opt = fields[6:fields.index("-")]
                return any(o.startswith("shared:") for o in opt)
    return False


def docker_ping(sock, timeout=2.0):
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            data = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                data += chunk
        return data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0]
    except OSError:
        return False


def tcp_open(addr, port, timeout=1.0):
    try:
        with socket.create_connection((addr, port), timeout=timeout):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- network devices

def ip_links(netns=None):
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["-o", "link", "show"]
    proc = run(cmd, check=False)
    names = []
    for line in proc.stdout.splitlines():
        parts = line.split(":", 2)
        if len(parts) > 2:
            names.append(parts[1].strip().split("@")[0])
    return names


def link_info(dev, netns=None):
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["-o", "link", "show", "dev", dev]
    proc = run(cmd, check=False)
    return proc.stdout if proc.returncode == 0 else None


def link_is_up(info):
    m = re.search(r"<([^>]*)>", info or "")
    return bool(m) and "UP" in m.group(1).split(",")


def addrs(dev, netns=None):
    cmd = ["ip"] + (["-n", netns] if netns else []) + ["-o", "-4", "addr", "show", "dev", dev]
    proc = run(cmd, check=False)
    return re.findall(r"inet (\S+)", proc.stdout)


def netns_list():
    proc = run(["ip", "netns", "list"], check=False)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
