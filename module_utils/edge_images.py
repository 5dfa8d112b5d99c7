"""Checkpoint image sets: listing, checksums, and xdelta3 deltas between two dumps of the
same container, computed and applied file by file in parallel."""

import concurrent.futures
import hashlib
import json
import os
import shutil

from ansible.module_utils.edge_errors import EdgeError

MANIFEST = "MANIFEST.json"
DELTA_SUFFIX = ".vcdiff"
HASH_CHUNK = 4 << 20


class ImageSetError(EdgeError):
    """An image set could not be read, encoded or rebuilt."""


def list_files(directory):
    """Relative paths of the regular files under directory, sorted."""
    found = []
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append(os.path.relpath(path, directory))
    return sorted(found)


def tree_size(directory):
    return sum(os.path.getsize(os.path.join(directory, f)) for f in list_files(directory))


def sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(HASH_CHUNK)
            if not chunk:
                return digest.hexdigest()
            digest.update(chunk)


def make_private_dir(path):
    """Create path (and parents) readable by root only: memory images hold the process's secrets."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def xdelta_window(size):
    """xdelta3's source window (-B) must cover the whole base file or matches beyond the
    default 64 MiB window are lost (LAB-NOTES); it accepts 16 KiB .. 2 GiB."""
    return min(max(size, 1 << 20), 1 << 31)


def encode(run, base_dir, target_dir, delta_dir, min_delta_size=65536, workers=None, level=1, sized_window=True):
    """Write into delta_dir what turns base_dir into target_dir: an xdelta3 patch per large
    file that exists in both, other files whole, and a manifest with every target file's
    size and sha256. `run(argv)` returns (rc, stdout, stderr). level=None and
    sized_window=False give xdelta3's defaults (as the reference prototype ran it)."""
    make_private_dir(delta_dir)
    names = list_files(target_dir)
    entries = {}

    def one(name):
        target = os.path.join(target_dir, name)
        base = os.path.join(base_dir, name)
        size = os.path.getsize(target)
        out = os.path.join(delta_dir, name)
        os.makedirs(os.path.dirname(out), mode=0o700, exist_ok=True)
        if size >= min_delta_size and os.path.isfile(base):
            argv = ["xdelta3", "-e", "-f"]
            if level is not None:
                argv.append("-%d" % level)
            if sized_window:
                argv += ["-B", str(xdelta_window(max(size, os.path.getsize(base))))]
            argv += ["-s", base, target, out + DELTA_SUFFIX]
            rc, _out, err = run(argv)
            if rc != 0:
                raise ImageSetError("xdelta3 could not encode %s" % name, cmd=" ".join(argv), rc=rc, stderr=err)
            encoding, payload = "vcdiff", os.path.getsize(out + DELTA_SUFFIX)
        else:
            shutil.copyfile(target, out)
            encoding, payload = "whole", size
        return name, {"size": size, "sha256": sha256_file(target), "encoding": encoding, "payload": payload}

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        # Largest files first so the long encodes start at once.
        ordered = sorted(names, key=lambda n: -os.path.getsize(os.path.join(target_dir, n)))
        for name, entry in pool.map(one, ordered):
            entries[name] = entry
    manifest = {"files": entries}
    with open(os.path.join(delta_dir, MANIFEST), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
    return manifest


def decode(run, base_dir, delta_dir, out_dir, workers=None):
    """Rebuild in out_dir the target described by delta_dir's manifest and check every
    file's sha256 against the source's. Raises ImageSetError naming the first bad file."""
    manifest_path = os.path.join(delta_dir, MANIFEST)
    try:
        with open(manifest_path) as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as exc:
        raise ImageSetError("the delta has no readable manifest at %s: %s" % (manifest_path, exc)) from exc
    make_private_dir(out_dir)

    def one(item):
        name, entry = item
        out = os.path.join(out_dir, name)
        os.makedirs(os.path.dirname(out), mode=0o700, exist_ok=True)
        if entry["encoding"] == "vcdiff":
            argv = ["xdelta3", "-d", "-f", "-s", os.path.join(base_dir, name),
                    os.path.join(delta_dir, name + DELTA_SUFFIX), out]
            rc, _out, err = run(argv)
            if rc != 0:
                raise ImageSetError("xdelta3 could not rebuild %s" % name, cmd=" ".join(argv), rc=rc, stderr=err)
        else:
            shutil.copyfile(os.path.join(delta_dir, name), out)
        actual = sha256_file(out)
        if actual != entry["sha256"]:
            raise ImageSetError("checksum mismatch for %s: rebuilt %s, source had %s"
                                % (name, actual, entry["sha256"]), stderr="sha256 %s != %s" % (actual, entry["sha256"]))
        return entry["size"]

    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        ordered = sorted(manifest["files"].items(), key=lambda item: -item[1]["size"])
        total = sum(pool.map(one, ordered))
    return {"files": len(manifest["files"]), "bytes": total}


def remove_tree(path):
    """Remove a directory tree; True when something was removed."""
    if os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=False)
        return True
    return False
