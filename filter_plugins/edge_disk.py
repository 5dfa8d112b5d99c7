"""Filters that decide what of a service's files moves with it: its writable layer, its
volumes, and the bind mounts it cannot take (from edge_container_info's `storage`)."""

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # unit tests without Ansible's error classes
    AnsibleFilterError = ValueError

TRUE = ("true", "yes", "on", "1")
FALSE = ("false", "no", "off", "0", "")


def _flag_or_paths(value):
    """shared_bind_mounts: true/false, or host paths (a list, or a comma-separated string)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        if value.strip().lower() in TRUE:
            return True
        if value.strip().lower() in FALSE:
            return False
        value = value.split(",")
    return [path.strip().rstrip("/") or "/" for path in value or [] if path.strip()]


def _shared(mount, shared):
    if shared is True:
        return True
    source = (mount.get("source") or "").rstrip("/")
    if ".." in source.split("/"):
        return False
    return any(source == path or source.startswith(path.rstrip("/") + "/") for path in shared or [])


def _size(volume):
    size = volume.get("size") or {}
    return "%.1f MB" % (size.get("bytes", 0) / 1e6) if size else "content not measured"


def _volume_name(volume):
    return "an anonymous volume" if volume.get("anonymous") else "volume %s" % volume.get("name")


# File system types of a local volume's driver options that mount network storage: every
# edge mounts the same content, so the destination's volume, created with the same options,
# already holds it.
NETWORK_FILESYSTEMS = frozenset(("nfs", "nfs4", "cifs", "smb3", "ceph", "glusterfs", "fuse.glusterfs", "lustre",
                                 "beegfs", "gpfs", "fuse.sshfs"))


def _host_content(volume, shared, host):
    """What a local volume with driver options mounts when that is the source host's own (its
    memory, one of its directories or disks): the destination's engine would mount an empty or
    another one, and CRIU leaves the engine's mounts out of the checkpoint. "" when the content
    is on storage every edge mounts (network file systems, paths said to be shared)."""
    if (volume.get("driver") or "local") != "local" or volume.get("copyable"):
        return ""
    options = volume.get("options") or {}
    kind = str(options.get("type") or "").strip().lower()
    device = str(options.get("device") or "")
    flags = [flag.strip() for flag in str(options.get("o") or "").split(",")]
    if kind in NETWORK_FILESYSTEMS:
        return ""
    if kind == "tmpfs":
        return "a tmpfs, its content in the memory of %s" % host
    if device.startswith("/") and _shared({"source": device}, shared):
        return ""
    if "bind" in flags or "rbind" in flags:
        return "a bind of the directory %s of %s" % (device, host)
    return "a %s file system on %s of %s" % (kind or "local", device or "a device", host)


def disk_plan(storage, service="", source="", migrate_layer=True, migrate_volumes=False, shared_bind_mounts=False,
              strategy="delta", binds=None):
    """What moves with the service: refusals (messages; the migration must not start),
    copy_layer, volumes (named volumes to create on the destination like the source's),
    copied_volumes (whose content is copied), bytes (to copy) and a one-line summary.
    `binds` (edge_policy's config_bind_mounts of the configuration the destination creates the
    container from) replaces the bind mounts of `storage`, which the same edge reports apart."""
    storage = storage or {}
    mounts = storage.get("mounts") or []
    migrate_volumes = _flag_or_paths(migrate_volumes) is True
    migrate_layer = _flag_or_paths(migrate_layer) is True
    shared = _flag_or_paths(shared_bind_mounts)
    binds = [m for m in (mounts if binds is None else binds) if m.get("type") == "bind"]
    volumes = [m for m in mounts if m.get("type") == "volume"]
    layer = storage.get("layer") or {}
    where = "'%s' on %s" % (service, source) if source else "'%s'" % service
    refusals = []

    unshared = [m for m in binds if not _shared(m, shared)]
    if unshared:
        refusals.append(
            "%s has bind mounts (%s). A bind mount is a directory of %s itself: the migration cannot copy it "
            "safely (other programs there may use it) and the destination would mount its own, different "
            "directory at that path. Use a named volume instead and migrate with -e migrate_volumes=true, or, "
            "if these paths are shared storage mounted at the same place on every edge (NFS, a cluster "
            "filesystem), say so with -e shared_bind_mounts=true or a list of those paths (also possible in "
            "the service's catalog entry, or in the destination's inventory)"
            % (where, ", ".join("%s -> %s" % (m.get("source"), m.get("destination")) for m in unshared),
               source or "its host"))
    if volumes and not migrate_volumes:
        refusals.append(
            "%s keeps data in volumes (%s) that would stay behind: migrate with -e migrate_volumes=true to "
            "copy them (during the warm-up, then what changed in the freeze), or set migrate_volumes: true "
            "in its catalog entry"
            % (where, ", ".join("%s at %s, %s" % (_volume_name(v), v.get("destination"), _size(v))
                                for v in volumes)))
    if migrate_volumes:
        for volume in volumes:
            content = _host_content(volume, shared, source or "its host")
            if content:
                refusals.append(
                    "%s keeps %s at %s in %s (driver options %s): the destination's engine would mount an "
                    "empty or another one there, and the checkpoint does not hold it. Use a plain named volume (no "
                    "driver options) for data that moves with the service, or the container's own tmpfs "
                    "(--tmpfs or --mount type=tmpfs, carried with its memory); if that path is shared storage "
                    "mounted at the same place on every edge, say so with -e shared_bind_mounts=<path>"
                    % (where, _volume_name(volume), volume.get("destination"), content,
                       ", ".join("%s=%s" % (k, "..." if k == "o" else v)
                                 for k, v in sorted((volume.get("options") or {}).items()))))
            if volume.get("used_by"):
                refusals.append(
                    "%s shares %s with %s: copying it would split their data; stop sharing it or move them "
                    "together by hand" % (where, _volume_name(volume), ", ".join(volume["used_by"])))
    if storage.get("image_id") and _layer_store_refusal(where, storage):
        refusals.append(_layer_store_refusal(where, storage))
    elif migrate_layer and storage.get("image_id") and not storage.get("upper_dir"):
        refusals.append(
            "%s uses the storage driver %s: only overlay2 layers can be copied; migrate with "
            "-e migrate_layer=false to leave the files it wrote in its own layer behind"
            % (where, storage.get("layer_driver")))
    disk_moves = strategy != "seed-delta"
    if not disk_moves and ((migrate_layer and layer.get("entries")) or (migrate_volumes and volumes)):
        refusals.append(
            "strategy seed-delta (the reference prototype's method) copies neither the files %s wrote in its "
            "layer (%d) nor its volumes: use delta or rsync, or -e migrate_layer=false to leave the files behind"
            % (where, layer.get("entries", 0)))

    copy_layer = disk_moves and migrate_layer and bool(storage.get("upper_dir"))
    moving = volumes if (disk_moves and migrate_volumes) else []
    copied = [v for v in moving if v.get("copyable")]
    plan = {
        "refusals": refusals,
        "copy_layer": copy_layer,
        "volumes": [{"name": v["name"], "driver": v.get("driver") or "local", "labels": v.get("labels") or {},
                     "options": v.get("options") or {}} for v in moving if not v.get("anonymous")],
        "copied_volumes": [{"name": v["name"], "source": v["source"], "destination": v["destination"]}
                           for v in copied],
        "bytes": (layer.get("bytes", 0) if copy_layer else 0)
        + sum((v.get("size") or {}).get("bytes", 0) for v in copied),
    }
    parts = []
    if copy_layer:
        parts.append("its layer (%d files, %.1f MB)" % (layer.get("files", 0), layer.get("bytes", 0) / 1e6))
    parts += ["%s (%s)" % (_volume_name(v), _size(v)) for v in copied]
    parts += ["%s (created the same way, its content stays on its storage)" % _volume_name(v)
              for v in moving if not v.get("copyable")]
    parts += ["shared bind mount %s" % m.get("source") for m in binds if _shared(m, shared)]
    plan["summary"] = ", ".join(parts) or "nothing on disk"
    return plan


def _layer_store_refusal(where, storage):
    if storage.get("image_store") != "containerd":
        return ""
    return ("%s keeps images and container layers in the containerd image store (Docker's containerd-snapshotter "
            "feature, storage driver %s): an image there is known by its manifest's digest, not by its "
            "configuration's as on a graph driver, and the engine names no layer directory, so neither the "
            "image the service runs nor the files it wrote can be carried over; run that edge's Docker with the "
            "overlay2 storage driver (no containerd-snapshotter in the features of its daemon.json)"
            % (where, storage.get("driver")))


def engine_storage_blocker(storage, plan, host="the destination"):
    """Why this edge's engine cannot take part in the migration the plan describes, or "": known
    before anything is frozen or created, from its engine's storage (edge_container_info's `storage`)."""
    storage = storage or {}
    refusal = _layer_store_refusal(host, storage)
    if refusal:
        return refusal
    if (plan or {}).get("copy_layer") and storage.get("driver") and storage["driver"] != "overlay2":
        return ("%s uses the storage driver %s: only overlay2 layers can be copied; migrate with "
                "-e migrate_layer=false to leave the files written in the container's own layer behind"
                % (host, storage["driver"]))
    return ""


def disk_trees(destination_storage, source_storage, plan):
    """The directories to push: {src, dest, what} for the layer and each copied volume,
    the destination's found by mount path in its newly created container."""
    destination_storage = destination_storage or {}
    trees = []
    if plan.get("copy_layer"):
        if not destination_storage.get("upper_dir"):
            raise AnsibleFilterError("the destination's container has no overlay2 layer to copy the files into "
                                     "(storage driver %s)" % destination_storage.get("layer_driver"))
        trees.append({"src": source_storage["upper_dir"], "dest": destination_storage["upper_dir"], "what": "layer"})
    by_path = {m.get("destination"): m for m in destination_storage.get("mounts") or [] if m.get("type") == "volume"}
    for volume in plan.get("copied_volumes") or []:
        found = by_path.get(volume["destination"]) or {}
        if not found.get("source") or not found.get("copyable", True):
            raise AnsibleFilterError("the destination's container has no plain local volume at %s to copy %s into"
                                     % (volume["destination"], volume["name"]))
        trees.append({"src": volume["source"], "dest": found["source"], "what": "volume %s" % volume["name"]})
    return trees


def disk_since(trees, warmup):
    """The trees to push again once the service is frozen, each with the time its warm-up
    push began and the listing it wrote (what did not change since is not sent again)."""
    done = {r["item"]["src"]: r for r in (warmup or {}).get("results") or []
            if isinstance(r.get("item"), dict) and r.get("started_at")}
    final = []
    for tree in trees or []:
        entry = {"src": tree["src"], "dest": tree["dest"]}
        if tree["src"] in done:
            entry["since"] = done[tree["src"]]["started_at"]
            if done[tree["src"]].get("listing"):
                entry["listing"] = done[tree["src"]]["listing"]
        final.append(entry)
    return final


class FilterModule:
    def filters(self):
        return {"disk_plan": disk_plan, "disk_trees": disk_trees, "disk_since": disk_since,
                "engine_storage_blocker": engine_storage_blocker}
