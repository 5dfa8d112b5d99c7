"""A container's own files: its writable layer (overlay2's UpperDir) and its volumes,
described for a migration and pushed host to host with rsync over SSH, keeping what
overlayfs and the programs need (whiteouts are 0/0 character devices, opaque directories
carry trusted.overlay.* xattrs; hard links, ACLs, capabilities, owners by number)."""

import concurrent.futures
import json
import os
import time

from ansible.module_utils.edge_private_dir import write_own_file
from ansible.module_utils.edge_transfer import push

# rsync -a already has -D (devices and specials: overlay whiteouts).
# --modify-window=-1: rsync's quick check compares modification times in whole seconds by
# default, so a file rewritten with the same size within the second of its warm-up copy would
# be skipped by the final push; nanoseconds tell them apart.
TREE_FLAGS = ("--hard-links", "--acls", "--xattrs", "--numeric-ids", "--modify-window=-1")
# Inode change times come from a coarse clock; a tree is compared with this much slack.
CTIME_SLACK_S = 1.0
LAYER_DRIVER = "overlay2"


def tree_stats(path):
    """Entries (anything but directories: files, links, whiteouts...), regular files and their
    apparent size under path; None when path is missing."""
    if not os.path.isdir(path):
        return None
    entries = files = size = 0
    for root, _dirs, names in os.walk(path):
        for name in names:
            try:
                stat = os.lstat(os.path.join(root, name))
            except FileNotFoundError:  # a running container deleted it meanwhile
                continue
            entries += 1
            if _is_regular(stat):
                files += 1
                size += stat.st_size
    return {"entries": entries, "files": files, "bytes": size}


def _dir_state(path, entries, stat):
    xattrs = {key: os.getxattr(path, key, follow_symlinks=False).hex()
              for key in sorted(os.listxattr(path, follow_symlinks=False))}
    return [sorted(entries), stat.st_mode, stat.st_uid, stat.st_gid, xattrs]


def stable_dirs(path, since):
    """The directories under path that nothing changed since before `since` (the start of a
    push, so the push saw them as they are), each with its names, mode, owner and xattrs."""
    found = {}
    for root, dirs, names in os.walk(path):
        stat = os.lstat(root)
        if stat.st_ctime < since - CTIME_SLACK_S:
            found[os.path.relpath(root, path)] = _dir_state(root, dirs + names, stat)
    return found


def changed_since(path, since, stable=None):
    """Whether anything under path (path included) was created, written, renamed, deleted
    or had its attributes changed since the epoch time `since`: every such change sets the
    inode change time of the entry or of its directory, and no program can set it back.
    A directory of `stable` (stable_dirs() after the push that began at `since`) whose
    change time moved but that holds the same names with the same mode, owner and xattrs
    counts as unchanged: a checkpoint makes and removes a temporary entry in the
    container's /tmp, which must not cost the frozen window a push."""
    limit = since - CTIME_SLACK_S
    stable = stable or {}
    try:
        for root, dirs, names in os.walk(path):
            stat = os.lstat(root)
            state = _dir_state(root, dirs + names, stat)
            if stat.st_ctime >= limit and stable.get(os.path.relpath(root, path)) != state:
                return True
            for name in names + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
                if os.lstat(os.path.join(root, name)).st_ctime >= limit:
                    return True
    except FileNotFoundError:  # something went away while we looked: it changed
        return True
    return False


def push_tree(run, src, dest_host, dest_dir, since=None, listing=None, **options):
    """Make dest_host:dest_dir an exact copy of the tree src (rsync's delta transfer for
    files the destination already has, deletions included). With `since` (when an earlier
    push of the same tree began), an unchanged tree is not sent again; `listing` is then the
    file in which that push wrote its stable directories. Without `since`, the push writes
    them to `listing` (a private file of this host)."""
    began, started = time.monotonic(), time.time()
    if since is None and listing:
        os.makedirs(os.path.dirname(listing), mode=0o700, exist_ok=True)
    if since is not None and not changed_since(src, since, _read_listing(listing)):
        stats = {"unchanged": True, "bytes_sent": 0, "files_transferred": 0}
    else:
        stats = push(run, src, dest_host, dest_dir, whole_file=False, extra_args=TREE_FLAGS, **options)
        stats["unchanged"] = False
        if since is None and listing:
            write_own_file(listing, json.dumps(stable_dirs(src, started)))
            stats["listing"] = listing
    stats.update(src=src, dest=dest_dir, started_at=started, duration_s=round(time.monotonic() - began, 4))
    return stats


def _read_listing(path):
    try:
        with open(path) as handle:
            return json.load(handle)
    except (TypeError, OSError, ValueError):  # none given, gone or damaged: judge by times alone
        return None


def push_trees(run, trees, dest_host, **options):
    """push_tree for each {src, dest[, since, listing]} of trees, all at once; the first failure is raised
    once every push has ended."""
    if not trees:
        return []
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(trees)) as pool:
        futures = [pool.submit(push_tree, run, tree["src"], dest_host, tree["dest"], tree.get("since"),
                               tree.get("listing"), **options) for tree in trees]
        concurrent.futures.wait(futures)
    return [future.result() for future in futures]


def describe(api, inspect, sizes=True):
    """What a migration needs to know of a container's files: its image id, its layer's
    directory (overlay2 only) and size, and each mount, with the volumes' driver, labels,
    options, size and the other containers using them."""
    driver = inspect.get("GraphDriver") or {}
    upper = (driver.get("Data") or {}).get("UpperDir") if driver.get("Name") == LAYER_DRIVER else None
    storage = {
        "image_id": inspect.get("Image"),
        "layer_driver": driver.get("Name"),
        "upper_dir": upper,
        "layer": tree_stats(upper) if upper and sizes else None,
        "mounts": [_mount(api, inspect, mount, sizes) for mount in inspect.get("Mounts") or []],
    }
    return storage


# What of a volume mount a push into it needs; the volume's options (credentials of a CIFS
# mount, say), labels and other users stay out of results that are kept in status files.
PLACEMENT_MOUNT_KEYS = ("type", "name", "source", "destination", "rw", "driver", "anonymous", "copyable")


def placement(storage):
    """Where a container's files go (image id, layer directory, mounts) from describe()'s answer,
    for pushing the service's files into a container just created."""
    return {
        "image_id": storage.get("image_id"),
        "layer_driver": storage.get("layer_driver"),
        "upper_dir": storage.get("upper_dir"),
        "mounts": [{key: mount[key] for key in PLACEMENT_MOUNT_KEYS if key in mount}
                   for mount in storage.get("mounts") or []],
    }


def _mount(api, inspect, mount, sizes):
    entry = {
        "type": mount.get("Type"),
        "name": mount.get("Name"),
        "source": mount.get("Source"),
        "destination": mount.get("Destination"),
        "rw": bool(mount.get("RW")),
    }
    if entry["type"] != "volume":
        return entry
    volume = inspect_volume(api, entry["name"]) or {}
    options = volume.get("Options") or {}
    entry.update(
        driver=mount.get("Driver") or volume.get("Driver") or "local",
        labels=volume.get("Labels") or {},
        options=options,
        anonymous=_anonymous(inspect, entry["name"]),
        # The content of a plain local volume is a directory of this host; any other volume
        # keeps it where its driver or its mount options say (NFS, a plugin...).
        copyable=(mount.get("Driver") or "local") == "local" and not options,
        used_by=volume_users(api, entry["name"], besides=inspect["Id"]),
    )
    if entry["copyable"] and sizes:
        entry["size"] = tree_stats(entry["source"])
    return entry


def _anonymous(inspect, name):
    """A volume is anonymous when the container names it nowhere (it comes from a VOLUME
    of the image or a bare `-v /path`): each new container gets a new one."""
    host_config = inspect.get("HostConfig") or {}
    named = {bind.split(":", 1)[0] for bind in host_config.get("Binds") or []}
    named |= {m.get("Source") for m in host_config.get("Mounts") or [] if m.get("Type") == "volume"}
    return name not in named


def inspect_volume(api, name):
    """The volume's inspect document, or None when there is no volume of that name."""
    from ansible.module_utils.edge_docker import APIError, DockerError, NotFound
    try:
        return api.inspect_volume(name)
    except NotFound:
        return None
    except APIError as exc:
        raise DockerError("cannot inspect volume %s: %s" % (name, exc), cmd="GET /volumes/%s" % name) from exc


def volume_users(api, name, besides=None):
    """Names of the containers (running or not) that use the volume, but the one with id `besides`."""
    from ansible.module_utils.edge_docker import APIError, DockerError
    try:
        users = api.containers(all=True, filters={"volume": name})
    except APIError as exc:
        raise DockerError("cannot list the containers using volume %s: %s" % (name, exc),
                          cmd="GET /containers/json?filters={\"volume\": [\"%s\"]}" % name) from exc
    return sorted((c.get("Names") or [c["Id"][:12]])[0].lstrip("/") for c in users if c["Id"] != besides)


def _is_regular(stat):
    return (stat.st_mode & 0o170000) == 0o100000
