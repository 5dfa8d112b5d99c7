"""Checkpoint image sets: listing, checksums, and deltas between two dumps of the same
container (a page delta for memory pages files, xdelta3 for other large files), computed and
applied file by file in parallel."""

import concurrent.futures
import hashlib
import json
import os
import shutil
import stat
import sys
import tempfile

from ansible.module_utils import edge_pagemap
from ansible.module_utils.edge_errors import EdgeError

MANIFEST = "MANIFEST.json"
DELTA_SUFFIX = ".vcdiff"
PAGE_DELTA_SUFFIX = ".pgdelta"
HASH_CHUNK = 4 << 20
DELTA_ARGS = dict(
    min_delta_size=dict(type="int", default=65536),
    workers=dict(type="int"),
    page_delta=dict(type="bool", default=True),
)


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
    """Bytes in the regular files under directory; a file removed meanwhile counts nothing."""
    total = 0
    for name in list_files(directory):
        try:
            total += os.path.getsize(os.path.join(directory, name))
        except FileNotFoundError:
            pass
    return total


def sha256_file(path):
    """sha256 of a regular file (a symlink or a device in a received checkpoint is refused)."""
    digest = hashlib.sha256()
    try:
        fd = edge_pagemap.open_regular(path)
    except edge_pagemap.PagemapError as exc:
        raise ImageSetError(exc.msg) from exc
    with open(fd, "rb") as handle:
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
    default 64 MiB window are lost; it accepts 16 KiB .. 2 GiB."""
    return min(max(size, 1 << 20), 1 << 31)


def pages_checksums(directory, workers=None):
    """{pages file: sha256} of the memory pages files of a dump (those its pagemaps name)."""
    names = sorted(edge_pagemap.pages_files(directory))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        return dict(zip(names, pool.map(lambda name: sha256_file(os.path.join(directory, name)), names), strict=True))


def encode(run, base_dir, target_dir, delta_dir, min_delta_size=65536, workers=None, level=1, sized_window=True,
           page_delta=True, base_checksums=None):
    """Write into delta_dir what turns base_dir into target_dir and a manifest with every
    target file's size and sha256: a page delta for each memory pages file whose pagemap both
    dumps have (page_delta), an xdelta3 patch for other large files found in both (nothing when
    a file's bytes are the same in both), other files whole. `run(argv)` returns (rc, stdout,
    stderr). level=None and sized_window=False give xdelta3's defaults (as the reference
    prototype ran it). base_checksums ({pages file: sha256} of base_dir, from pages_checksums
    at warm-up) go into the manifest, so that a destination which checked its copy of the base
    before the freeze need not check the rebuilt pages files in it."""
    make_private_dir(delta_dir)
    names = list_files(target_dir)
    paged = _paired_pages(base_dir, target_dir) if page_delta else {}
    entries = {name: {} for name in names}

    def pages(name):
        pagemap, base_pages = paged[name]
        out = os.path.join(delta_dir, name + PAGE_DELTA_SUFFIX)
        try:
            stats = edge_pagemap.encode(os.path.join(base_dir, pagemap), os.path.join(base_dir, base_pages),
                                        os.path.join(target_dir, pagemap), os.path.join(target_dir, name), out)
        except edge_pagemap.PagemapError:
            # A dump this code does not understand (lazy pages, a new image format): xdelta3 still works.
            if os.path.exists(out):
                os.remove(out)
            found = xdelta(name) if os.path.isfile(os.path.join(base_dir, name)) else whole(name)
            return dict(found, sha256=sha256_file(os.path.join(target_dir, name)))
        return dict(encoding="pages", base=base_pages, payload=os.path.getsize(out),
                    changed_pages=stats["changed_pages"], base_sha256=(base_checksums or {}).get(base_pages))

    def xdelta(name):
        target, base = os.path.join(target_dir, name), os.path.join(base_dir, name)
        if _same_bytes(target, base):
            # A tmpfs nothing wrote to since the warm-up (its tar, tens of MB in a /dev/shm):
            # xdelta3 would take 0.3 s to find that out on each host.
            return dict(encoding="same", payload=0)
        out = os.path.join(delta_dir, name + DELTA_SUFFIX)
        # -D: CRIU writes a tmpfs's files as a gzip'd tar (tmpfs-dev-*.tar.gz.img); xdelta3 would
        # otherwise gunzip it to encode and gzip it again to decode, with the destination's gzip:
        # seconds inside the frozen window for a large /dev/shm, and bytes that need not be the source's.
        argv = ["xdelta3", "-e", "-f", "-D"]
        if level is not None:
            argv.append("-%d" % level)
        if sized_window:
            argv += ["-B", str(xdelta_window(max(os.path.getsize(target), os.path.getsize(base))))]
        argv += ["-s", base, target, out]
        rc, _out, err = run(argv)
        if rc != 0:
            raise ImageSetError("xdelta3 could not encode %s" % name, cmd=" ".join(argv), rc=rc, stderr=err)
        return dict(encoding="vcdiff", payload=os.path.getsize(out))

    def whole(name):
        out = os.path.join(delta_dir, name)
        shutil.copyfile(os.path.join(target_dir, name), out)
        return dict(encoding="whole", payload=os.path.getsize(out))

    def encoder(name):
        if name in paged:
            return pages
        size = os.path.getsize(os.path.join(target_dir, name))
        return xdelta if size >= min_delta_size and os.path.isfile(os.path.join(base_dir, name)) else whole

    def checksum(name):
        path = os.path.join(target_dir, name)
        if name in paged and paged[name][1] in (base_checksums or {}):
            # The destination checks its base before the freeze instead (decode's verified_base).
            return dict(size=os.path.getsize(path))
        return dict(size=os.path.getsize(path), sha256=sha256_file(path))

    for name in names:
        os.makedirs(os.path.dirname(os.path.join(delta_dir, name)), mode=0o700, exist_ok=True)
    # Encodes and checksums are separate jobs so a large file's checksum runs beside its
    # encode on another core; largest files first so the long jobs start at once.
    jobs = [(name, job) for name in names for job in (encoder(name), checksum)]
    jobs.sort(key=lambda item: -os.path.getsize(os.path.join(target_dir, item[0])))
    with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        for (name, _job), found in zip(jobs, pool.map(lambda item: item[1](item[0]), jobs), strict=True):
            entries[name].update(found)
    manifest = {"files": entries}
    with open(os.path.join(delta_dir, MANIFEST), "w") as handle:
        json.dump(manifest, handle, indent=1, sort_keys=True)
    return manifest


def _paired_pages(base_dir, target_dir):
    """{target pages file: (its pagemap, the base's pages file for that pagemap)} for the
    target's pages files whose pagemap (same task) also exists in the base dump."""
    paired = {}
    if not os.path.isdir(base_dir):
        return paired
    base_files = {pagemap: pages for pages, pagemap in edge_pagemap.pages_files(base_dir).items()}
    for pages, pagemap in edge_pagemap.pages_files(target_dir).items():
        if pagemap in base_files and os.path.isfile(os.path.join(base_dir, base_files[pagemap])):
            paired[pages] = (pagemap, base_files[pagemap])
    return paired


ENCODINGS = ("pages", "vcdiff", "same", "whole")
SHA256_HEX = frozenset("0123456789abcdef")


def plain_name(name, what="file"):
    """name when it is a plain file name of a checkpoint (no directory part, not . or ..);
    the source's manifest is data from another host, never a path to follow."""
    if not isinstance(name, str) or not name or "/" in name or "\0" in name or name in (".", ".."):
        raise ImageSetError("the source's manifest names %r as a %s: only plain file names of the checkpoint "
                            "are accepted" % (name, what))
    return name


def inside(directory, name):
    """directory/name, checked to resolve inside directory."""
    path = os.path.join(directory, plain_name(name))
    real = os.path.realpath(directory)
    if os.path.dirname(os.path.realpath(path)) != real:
        raise ImageSetError("%s leads outside %s" % (path, directory))
    return path


def check_received(directory):
    """Refuse a checkpoint directory received from another host unless it is a directory
    (not a symlink) holding regular files only: no symlinks, devices, fifos, sockets or
    subdirectories, which CRIU or a rebuild would follow or open."""
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode):
        raise ImageSetError("%s is not a directory (a symlink or another file): refused" % directory)
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.is_file(follow_symlinks=False):
                raise ImageSetError("%s holds %s, which is not a regular file: a received checkpoint holds regular "
                                    "files only; refused" % (directory, entry.name))


def checked_manifest(manifest):
    """The source's manifest, every entry's name, encoding, base, size and checksums checked."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("files"), dict):
        raise ImageSetError("the delta's manifest has no file table")
    for name, entry in manifest["files"].items():
        plain_name(name)
        if name == MANIFEST or not isinstance(entry, dict) or entry.get("encoding") not in ENCODINGS:
            raise ImageSetError("the delta's manifest has a bad entry for %r" % name)
        size = entry.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ImageSetError("the delta's manifest gives %r no valid size" % name)
        if entry["encoding"] == "pages":
            plain_name(entry.get("base"), "base")
        for key in ("sha256", "base_sha256"):
            value = entry.get(key)
            if value is not None and not (isinstance(value, str) and len(value) == 64 and set(value) <= SHA256_HEX):
                raise ImageSetError("the delta's manifest has a bad %s for %r" % (key, name))
    return manifest


def _refuse_symlink(path):
    if os.path.islink(path):
        raise ImageSetError("%s is a symlink: refused as the directory of a rebuilt checkpoint" % path)


def _building_dir(path):
    """A new private directory beside path, of a name nobody can guess, to rebuild into. Not
    path itself: other edges may write in the migration's directory, and one that swapped path
    for a symlink while the rebuild wrote had root create files of the source's choosing
    wherever it pointed."""
    _refuse_symlink(path)
    return tempfile.mkdtemp(prefix=".rebuild-", dir=os.path.dirname(os.path.abspath(path)))


def _put_in_place(building, path):
    """Move the rebuilt directory to path (rename(2) neither follows a symlink at path nor
    replaces anything but an empty directory there); path is looked at again, as it may have
    been swapped while the rebuild ran."""
    _refuse_symlink(path)
    if os.path.isdir(path):
        shutil.rmtree(path)
    os.rename(building, path)


def _create(path):
    """A new file at path, opened for writing; never an existing file or a symlink's target."""
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)


def decode(run, base_dir, delta_dir, out_dir, workers=None, verified_base=None):
    """Rebuild in out_dir the target described by delta_dir's manifest and check every
    file's sha256 against the source's. Raises ImageSetError naming the first bad file.
    verified_base: {pages file: sha256} of base_dir's pages files checked earlier (before the
    freeze); a pages file rebuilt from such a base and a delta that came intact over SSH is
    the source's, so its own checksum (0.2 s for 300 MB) is not taken again in the freeze.
    Both received directories, the manifest and every page delta are checked first (plain
    file names, regular files only, runs inside their files); every file is created anew in a
    private directory that then replaces out_dir."""
    for directory in (delta_dir, base_dir):
        try:
            check_received(directory)
        except OSError as exc:
            raise ImageSetError("cannot read the received checkpoint %s: %s" % (directory, exc)) from exc
    manifest_path = os.path.join(delta_dir, MANIFEST)
    try:
        with open(edge_pagemap.open_regular(manifest_path)) as handle:
            manifest = checked_manifest(json.load(handle))
    except (OSError, ValueError, edge_pagemap.PagemapError) as exc:
        raise ImageSetError("the delta has no readable manifest at %s: %s" % (manifest_path, exc)) from exc
    building = _building_dir(out_dir)

    def one(item):
        name, entry = item
        out = inside(building, name)
        checked_base = entry["encoding"] == "pages" and entry.get("base_sha256") and \
            (verified_base or {}).get(entry["base"]) == entry["base_sha256"]
        if entry["encoding"] == "pages":
            try:
                edge_pagemap.decode(inside(base_dir, entry["base"]), inside(delta_dir, name + PAGE_DELTA_SUFFIX),
                                    out, consume_base=checked_base, size=entry["size"])
            except (OSError, edge_pagemap.PagemapError) as exc:
                raise ImageSetError("could not rebuild %s from its page delta: %s" % (name, exc)) from exc
        elif entry["encoding"] == "vcdiff":
            os.close(_create(out))
            argv = ["xdelta3", "-d", "-f", "-D", "-R", "-s", inside(base_dir, name),
                    inside(delta_dir, name + DELTA_SUFFIX), out]
            rc, _out, err = run(argv)
            if rc != 0:
                raise ImageSetError("xdelta3 could not rebuild %s" % name, cmd=" ".join(argv), rc=rc, stderr=err)
        elif entry["encoding"] == "same":
            _copy(inside(base_dir, name), out)
        else:
            _copy(inside(delta_dir, name), out)
        if checked_base:
            return entry["size"]
        if not entry.get("sha256"):
            raise ImageSetError("%s has no checksum in the manifest and its base was not checked" % name)
        actual = sha256_file(out)
        if actual != entry["sha256"]:
            raise ImageSetError("checksum mismatch for %s: rebuilt %s, source had %s"
                                % (name, actual, entry["sha256"]), stderr="sha256 %s != %s" % (actual, entry["sha256"]))
        return entry["size"]

    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
            ordered = sorted(manifest["files"].items(), key=lambda item: -item[1]["size"])
            total = sum(pool.map(one, ordered))
        check_received(building)
        _put_in_place(building, out_dir)
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return {"files": len(manifest["files"]), "bytes": total}


def _same_bytes(one, other):
    """Whether two files hold the same bytes."""
    if os.path.getsize(one) != os.path.getsize(other):
        return False
    with open(one, "rb") as first, open(other, "rb") as second:
        while True:
            chunk = first.read(HASH_CHUNK)
            if chunk != second.read(HASH_CHUNK):
                return False
            if not chunk:
                return True


def _copy(src, dest):
    try:
        source = edge_pagemap.open_regular(src)
    except (OSError, edge_pagemap.PagemapError) as exc:
        raise ImageSetError("cannot read %s: %s" % (src, exc)) from exc
    with open(source, "rb") as reader, open(_create(dest), "wb") as writer:
        shutil.copyfileobj(reader, writer, HASH_CHUNK)


def _raise_unless_gone(_function, _path, error):
    error = error[1] if isinstance(error, tuple) else error
    if not isinstance(error, FileNotFoundError):
        raise error


def remove_tree(path):
    """Remove a directory tree; True when something was removed. What another process removes
    meanwhile is no error (two migrations' cleanups on one host can both remove a stale copy
    in containerd's temporary directory)."""
    if not os.path.lexists(path):
        return False
    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=_raise_unless_gone)  # pylint: disable=unexpected-keyword-arg
    else:
        shutil.rmtree(path, onerror=_raise_unless_gone)  # pylint: disable=deprecated-argument
    return True
