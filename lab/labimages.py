"""The lab's images and registry: the registry daemon, the images (stand-ins on a Debian
python3 or busybox root, real servers from Debian's packages), built or imported on the
first host and pushed, and the registry's seed kept in the cache. Standard library only."""

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from labcore import (
    CACHE,
    LOG,
    RUN,
    VAR,
    Changes,
    LabError,
    daemon_env,
    ensure_dir,
    kill_pids,
    pid_from_file,
    run,
    safe_rmtree,
    say,
    spawn_daemon,
    wait_for,
    write_if_changed,
)
from labhosts import DOCKER, DOCKER_REGISTRY, REGISTRY, REGISTRY_CONFIG, REGISTRY_DIR, REGISTRY_PID

IMAGES_STAMP = VAR / "images.json"
IMAGES_DIR = Path(__file__).resolve().parent / "images"
DEBIAN_SUITE = "bookworm"

COUNTER_SCRIPT = ("i=0; nc -ll -p 9999 -e cat /tmp/count & "
                  "while :; do i=$((i+1)); echo $i > /tmp/count; echo $i; sleep 0.1; done")

# name -> how the image is made; part of the image's source hash
IMAGES = {
    "openface-standin": {
        "base": "python",
        "changes": ['CMD ["python3", "/app/statesvc.py"]', "ENV STATE_MB=190",
                    "ENV PYTHONUNBUFFERED=1", "EXPOSE 9999/tcp", "WORKDIR /app"],
    },
    "yolo-standin": {
        "base": "python",
        "changes": ['CMD ["python3", "/app/statesvc.py"]', "ENV STATE_MB=160",
                    "ENV PYTHONUNBUFFERED=1", "EXPOSE 9999/tcp", "WORKDIR /app"],
    },
    "simple": {
        "base": "busybox",
        "changes": ["CMD " + json.dumps(["/bin/sh", "-c", COUNTER_SCRIPT]), "EXPOSE 9999/tcp"],
    },
    # Real servers from Debian's packages, one shared layer (SERVERS_ROOTFS) plus their
    # configuration files (lab/images/servers/); tests/lab/test_real_servers.py migrates them.
    # They run as root: see SERVERS_ROOTFS.
    "redis": {
        "base": "servers", "files": {},
        "changes": ['CMD ["redis-server", "--protected-mode", "no"]', "EXPOSE 6379/tcp", "WORKDIR /data"],
    },
    "nginx": {
        "base": "servers", "files": {"/etc/nginx/nginx.conf": "nginx.conf"},
        "changes": ['CMD ["nginx", "-g", "daemon off;"]', "EXPOSE 80/tcp", "STOPSIGNAL SIGQUIT"],
    },
    "memcached": {
        "base": "servers", "files": {},
        "changes": ['CMD ["memcached", "-u", "root"]', "EXPOSE 11211/tcp"],
    },
    "mosquitto": {
        "base": "servers", "files": {"/etc/mosquitto/mosquitto.conf": "mosquitto.conf"},
        "changes": ['CMD ["mosquitto", "-c", "/etc/mosquitto/mosquitto.conf"]', "EXPOSE 1883/tcp"],
    },
    "notes-app": {
        "base": "servers", "files": {"/app/notes_app.py": "notes_app.py"},
        "changes": ['CMD ["gunicorn", "--bind", "0.0.0.0:8000", "--workers", "1", "--threads", "4", '
                    '"--chdir", "/app", "notes_app:app"]', "EXPOSE 8000/tcp", "WORKDIR /app"],
    },
}
# python3, not python3-minimal: the stand-ins need json, socketserver and hashlib from the full stdlib.
PYTHON_ROOTFS = {"suite": DEBIAN_SUITE, "variant": "minbase", "include": "python3",
                 "trim": ["usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info",
                          "var/cache/apt", "var/lib/apt/lists", "var/cache/debconf/templates.dat-old",
                          "var/log"], "recipe": 1}
# The real servers' shared layer. Debian's packages start them as root and most then switch
# to their own user (nginx's workers, memcached, mosquitto); the lab's configurations keep
# them root, because CRIU cannot dump a process of another uid on a machine whose root lacks
# CAP_SYS_RESOURCE (it fails reading the process's rlimits), as the lab machines' root does.
SERVERS_ROOTFS = dict(PYTHON_ROOTFS, include="python3,gunicorn,redis-server,nginx,memcached,mosquitto",
                      recipe=1)
SERVERS_DIR = IMAGES_DIR / "servers"


def http_get(url, timeout=5):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=timeout) as resp:
        return resp.status, resp.read()


REGISTRY_CONFIG_TEXT = """\
# Written by lab/lab: the lab's registry (Debian's docker-registry, distribution 2.8).
version: 0.1
log:
  level: info
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
""" % (REGISTRY_DIR, REGISTRY)


def registry_up():
    if not pid_from_file(REGISTRY_PID, str(REGISTRY_CONFIG)):
        return False
    try:
        return http_get("http://%s/v2/" % REGISTRY, 2)[0] == 200
    except (OSError, urllib.error.URLError):
        return False


def ensure_registry():
    ensure_dir(REGISTRY_DIR, 0o755)
    ensure_dir(RUN, 0o755)
    changed = write_if_changed(REGISTRY_CONFIG, REGISTRY_CONFIG_TEXT, 0o644)
    pid = pid_from_file(REGISTRY_PID, str(REGISTRY_CONFIG))
    if pid and not changed and (registry_up() or wait_for(registry_up, 10)):
        return
    if pid:
        kill_pids({pid})
    proc = spawn_daemon([DOCKER_REGISTRY, "serve", REGISTRY_CONFIG], LOG / "registry.log")
    REGISTRY_PID.write_text("%d\n" % proc.pid)
    if not wait_for(registry_up, 20):
        raise LabError("registry did not come up on %s; see %s" % (REGISTRY, LOG / "registry.log"))
    Changes.add("registry started on %s (pid %d, storage %s)" % (REGISTRY, proc.pid, REGISTRY_DIR), restart=True)


def registry_tags(name):
    try:
        status, body = http_get("http://%s/v2/%s/tags/list" % (REGISTRY, name))
        return (json.loads(body).get("tags") or []) if status == 200 else []
    except (OSError, urllib.error.URLError, ValueError):
        return []


def apt_mirror():
    """The Debian mirror configured in the machine's own apt sources."""
    files = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*"))
    uris = []
    for f in files:
        try:
            text = f.read_text()
        except OSError:
            continue
        if f.suffix == ".sources":
            uris += re.findall(r"^URIs:\s*(.+)$", text, re.M)
        else:
            for line in text.splitlines():
                m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)", line)
                if m:
                    uris.append(m.group(1))
    for entry in uris:
        for uri in entry.split():
            if "security" not in uri and re.search(r"/debian/?$", uri):
                return uri
    raise LabError("no Debian mirror found in /etc/apt/sources.list{,.d}")


def recipe_hash(obj):
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


def python_rootfs():
    """Debian minbase + python3 rootfs as a tarball in the cache (built once)."""
    return debootstrap_rootfs("python3", PYTHON_ROOTFS)


def servers_rootfs():
    return debootstrap_rootfs("servers", SERVERS_ROOTFS)


def debootstrap_rootfs(label, recipe):
    """A Debian minbase rootfs with recipe's packages as a tarball in the cache, built once
    per recipe."""
    tar = CACHE / ("%s-%s-minbase.tar" % (DEBIAN_SUITE, label))
    meta = CACHE / ("%s-%s-minbase.json" % (DEBIAN_SUITE, label))
    want = recipe_hash(recipe)
    try:
        info = json.loads(meta.read_text())
        if info.get("recipe") == want and tar.exists() and tar.stat().st_size == info.get("size"):
            return tar, info
    except (OSError, ValueError):
        pass
    ensure_dir(CACHE, 0o755)
    root = CACHE / ("rootfs-%s.tmp" % label)
    safe_rmtree(root)
    mirror = apt_mirror()
    say("  building the %s rootfs: debootstrap --variant=minbase --include=%s "
        "%s from %s (about 30 s, cached in %s)" % (label, recipe["include"], DEBIAN_SUITE, mirror, CACHE))
    t0 = time.time()
    log = LOG / ("debootstrap-%s.log" % label)
    ensure_dir(LOG)
    try:
        with open(log, "w") as out:
            proc = subprocess.run(["debootstrap", "--variant=minbase", "--include=" + recipe["include"],
                                   recipe["suite"], str(root), mirror], stdout=out, stderr=out,
                                  env=daemon_env(), timeout=900)
        if proc.returncode != 0:
            raise LabError("debootstrap failed (rc=%d); see %s" % (proc.returncode, log))
        for rel in recipe["trim"]:
            p = root / rel
            if p.is_dir():
                for child in p.iterdir():
                    safe_rmtree(child)
        tmp = tar.with_suffix(".tar.tmp")
        run(["tar", "-C", root, "--numeric-owner", "--xattrs", "-cf", tmp, "."], timeout=600)
        with tarfile.open(tmp) as tf:
            members = 0
            for _ in tf:
                members += 1
            end = tf.offset
        os.replace(tmp, tar)
    finally:
        safe_rmtree(root)
    info = {"recipe": want, "size": tar.stat().st_size, "end": end, "members": members,
            "mirror": mirror}
    write_if_changed(meta, json.dumps(info, indent=1) + "\n")
    Changes.add("built %s (%d MB, %d files) in %.0f s" % (tar, info["size"] >> 20, members,
                                                          time.time() - t0), prepare=False)
    return tar, info


def tar_add_bytes(tf, name, data, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    ti.mtime = int(time.time())
    tf.addfile(ti, fileobj=io.BytesIO(data))


def tar_add_dir(tf, name, mode=0o755):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = mode
    ti.mtime = int(time.time())
    tf.addfile(ti)


def write_rootfs_tar(out, tar, info):
    """The cached rootfs tarball without its end-of-archive blocks, so that files can follow."""
    with open(tar, "rb") as f:
        remaining = info["end"]
        while remaining > 0:
            chunk = f.read(min(remaining, 1 << 20))
            if not chunk:
                raise LabError("%s is shorter than recorded; remove it and retry" % tar)
            out.write(chunk)
            remaining -= len(chunk)


def write_python_image_tar(out):
    write_rootfs_tar(out, *python_rootfs())
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tf:
        tar_add_dir(tf, "./app")
        tar_add_bytes(tf, "./app/statesvc.py", (IMAGES_DIR / "statesvc.py").read_bytes(), 0o755)


def write_busybox_image_tar(out):
    busybox = shutil.which("busybox")
    applets = run([busybox, "--list-full"]).stdout.split()
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.GNU_FORMAT) as tf:
        dirs = {"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys"}
        for d in sorted(dirs):
            tar_add_dir(tf, d)
        tar_add_dir(tf, "tmp", 0o1777)
        tar_add_dir(tf, "root", 0o700)
        tf.add(busybox, "bin/busybox", recursive=False)
        for a in applets:
            if a == "bin/busybox" or a.split("/")[0] not in ("bin", "sbin", "usr"):
                continue
            if os.path.dirname(a) not in dirs:
                continue
            ti = tarfile.TarInfo(a)
            ti.type = tarfile.SYMTYPE
            ti.linkname = "/bin/busybox"
            tf.addfile(ti)
        tar_add_bytes(tf, "etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
        tar_add_bytes(tf, "etc/group", b"root:x:0:\n")


def image_source_hash(name):
    spec = IMAGES[name]
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    if spec["base"] == "python":
        h.update(recipe_hash(PYTHON_ROOTFS).encode())
        h.update((IMAGES_DIR / "statesvc.py").read_bytes())
    elif spec["base"] == "servers":
        h.update(recipe_hash(SERVERS_ROOTFS).encode())
        for source in sorted(spec["files"].values()):
            h.update((SERVERS_DIR / source).read_bytes())
    else:
        h.update(Path(shutil.which("busybox")).read_bytes())
    return h.hexdigest()


REGISTRY_SEED = CACHE / "registry-seed"


def seed_registry():
    """After `down`, refill the registry from the copy of its storage kept in the cache when
    the images' sources have not changed (saves importing and pushing them again)."""
    seed_stamp = REGISTRY_SEED / "images.json"
    if IMAGES_STAMP.exists() or (REGISTRY_DIR / "docker").exists() or not seed_stamp.exists():
        return
    try:
        stamp = json.loads(seed_stamp.read_text())
    except (OSError, ValueError):
        return
    if any(stamp.get(name) != image_source_hash(name) for name in IMAGES):
        return
    ensure_dir(REGISTRY_DIR, 0o755)
    run(["cp", "-a", REGISTRY_SEED / "docker", REGISTRY_DIR / "docker"], timeout=300)
    write_if_changed(IMAGES_STAMP, seed_stamp.read_text())
    Changes.add("registry storage restored from %s (images unchanged since they were pushed)"
                % REGISTRY_SEED)


def save_registry_seed():
    tmp = CACHE / "registry-seed.tmp"
    safe_rmtree(tmp)
    ensure_dir(tmp, 0o755)
    run(["cp", "-a", REGISTRY_DIR / "docker", tmp / "docker"], timeout=300)
    shutil.copy(IMAGES_STAMP, tmp / "images.json")
    safe_rmtree(REGISTRY_SEED)
    os.replace(tmp, REGISTRY_SEED)


def import_image(builder, ref, changes, write_tar):
    cmd = [DOCKER, "-H", builder.docker_host, "import"]
    for c in changes:
        cmd += ["-c", c]
    cmd += ["-", ref]
    with tempfile.TemporaryFile() as errf:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=errf, env=daemon_env())
        try:
            write_tar(proc.stdin)
        except BrokenPipeError:
            pass
        finally:
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
        proc.wait(timeout=600)
        errf.seek(0)
        err = errf.read().decode(errors="replace").strip()
    if proc.returncode != 0:
        raise LabError("docker import of %s failed: %s" % (ref, err))


def build_server_image(builder, ref, spec):
    """FROM the servers rootfs (imported once per recipe on the builder, so that all server
    images share that layer in the registry and on the edges), plus spec's files."""
    base = "edgelab/servers-base:%s" % recipe_hash(SERVERS_ROOTFS)[:12]
    if builder.docker("image", "inspect", base, check=False).returncode != 0:
        import_image(builder, base, [], lambda out: write_rootfs_tar(out, *servers_rootfs()))
    dockerfile = ["FROM " + base]
    dockerfile += ["COPY %s %s" % (source, dest) for dest, source in sorted(spec["files"].items())]
    dockerfile += spec["changes"]
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w", format=tarfile.GNU_FORMAT) as tf:
        tar_add_bytes(tf, "Dockerfile", ("\n".join(dockerfile) + "\n").encode())
        for source in spec["files"].values():
            tar_add_bytes(tf, source, (SERVERS_DIR / source).read_bytes())
    proc = subprocess.run([DOCKER, "-H", builder.docker_host, "build", "-q", "-t", ref, "-"],
                          input=context.getvalue(), capture_output=True, timeout=600,
                          env=daemon_env({"DOCKER_BUILDKIT": "0"}))
    if proc.returncode != 0:
        raise LabError("docker build of %s failed: %s" % (ref, (proc.stderr or proc.stdout).decode(errors="replace")))


def ensure_images(builder):
    try:
        stamp = json.loads(IMAGES_STAMP.read_text())
    except (OSError, ValueError):
        stamp = {}
    pushed = False
    for name, spec in IMAGES.items():
        ref = "%s/%s:latest" % (REGISTRY, name)
        want = image_source_hash(name)
        if stamp.get(name) == want and "latest" in registry_tags(name):
            continue
        # rootfs built (once) before the import is timed
        if spec["base"] == "python":
            python_rootfs()
        elif spec["base"] == "servers":
            servers_rootfs()
        t0 = time.time()
        if spec["base"] == "servers":
            build_server_image(builder, ref, spec)
        else:
            import_image(builder, ref, spec["changes"], write_python_image_tar if spec["base"] == "python"
                         else write_busybox_image_tar)
        builder.docker("push", ref, timeout=600)
        if "latest" not in registry_tags(name):
            raise LabError("pushed %s but the registry does not list it" % ref)
        stamp[name] = want
        write_if_changed(IMAGES_STAMP, json.dumps(stamp, indent=1, sort_keys=True) + "\n")
        Changes.add("image %s %s on %s and pushed (%.1f s)" % (
            ref, "built" if spec["base"] == "servers" else "imported", builder.name, time.time() - t0),
            prepare=False)
        pushed = True
    if pushed:
        save_registry_seed()
