"""A prepared migration's record, found in the source edge's workdir where other edges' keys
write too, is data from an edge: before a finish acts on it, each field that says where to
push, what to push, what to freeze and what to delete is checked against the inventory and
against the service's own containers, as the edges reported them in this run."""

import numbers
import os
import re

from ansible.errors import AnsibleFilterError

# Where each host's settings put a migration's directories and engines (choose.yml's paths).
INVENTORY_FIELDS = ("src_work", "dst_work", "dest_address", "src_docker", "dst_docker", "src_exec_root")
JOB_ID = re.compile(r"^j?[0-9]+\.[0-9]+$")
TREE_KEYS = frozenset(("src", "dest", "since", "listing"))


def _below(path, directory):
    if not isinstance(path, str) or not path.startswith("/"):
        return False
    path = os.path.normpath(path)
    return path != directory and path.startswith(directory.rstrip("/") + "/") and "/../" not in path + "/"


def _volume_mounts(storage):
    return [m for m in (storage or {}).get("mounts") or [] if isinstance(m, dict) and m.get("type") == "volume"]


def _tree_ends(storage):
    """The directories a layer or volume copy may start or end at on one host: the container's
    own layer and its plain local volumes."""
    ends = {m.get("source") for m in _volume_mounts(storage) if m.get("copyable", True)}
    ends.add((storage or {}).get("upper_dir"))
    return {end for end in ends if isinstance(end, str) and end.startswith("/")}


def _tree_problems(trees, src_work, source_storage, destination_storage):
    if not isinstance(trees, list):
        return ["fs_final_trees is not a list"]
    sources, destinations = _tree_ends(source_storage), _tree_ends(destination_storage)
    problems = []
    for tree in trees:
        if not isinstance(tree, dict) or not set(tree) <= TREE_KEYS:
            problems.append("fs_final_trees has an entry that is not a copy of the service's files: %r" % (tree,))
            continue
        if tree.get("src") not in sources:
            problems.append("fs_final_trees would push %r, which is not the service's layer or one of its volumes on "
                            "the source" % (tree.get("src"),))
        if tree.get("dest") not in destinations:
            problems.append("fs_final_trees would write into %r, which is not the layer or a volume of the "
                            "destination's container" % (tree.get("dest"),))
        if "listing" in tree and not _below(tree["listing"], src_work):
            problems.append("fs_final_trees reads a listing %r outside the migration's directory" % (tree["listing"],))
        if "since" in tree and (isinstance(tree["since"], bool) or not isinstance(tree["since"], numbers.Real)):
            problems.append("fs_final_trees has a 'since' that is not a time: %r" % (tree["since"],))
    return problems


def _volume_problems(disk, source_storage):
    if not isinstance(disk, dict):
        return ["disk is not a mapping"]
    own = {m.get("name") for m in _volume_mounts(source_storage)}
    problems = []
    for key in ("volumes", "copied_volumes"):
        for volume in disk.get(key) or []:
            name = volume.get("name") if isinstance(volume, dict) else None
            if name not in own:
                problems.append("disk.%s names %r, which is not a volume of the service's container on the source"
                                % (key, name))
    return problems


def prepared_record_problems(record, expected, strategies, source_storage=None, destination_storage=None):
    """What is wrong with a prepared record: an empty list when a finish may act on it.

    expected: the inventory's values of INVENTORY_FIELDS for the record's source and destination.
    strategies: the strategies a migration can be prepared with.
    source_storage, destination_storage: edge_container_info's `storage` of the service's
    container on the source and of the container prepared on the destination; None for a
    record this controller wrote itself (its pointer), which is not checked against them."""
    if not isinstance(record, dict) or not isinstance(expected, dict):
        raise AnsibleFilterError("prepared_record_problems needs the record and the expected paths as mappings")
    problems = []
    for field in INVENTORY_FIELDS:
        if record.get(field) != expected.get(field):
            problems.append("%s is %r where the inventory gives %r" % (field, record.get(field), expected.get(field)))
    if record.get("strategy") not in strategies:
        problems.append("strategy %r is not one a migration is prepared with (%s)"
                        % (record.get("strategy"), ", ".join(strategies)))
    src_work = expected.get("src_work") or ""
    if not _below(record.get("warmup_path"), src_work):
        problems.append("warmup_path %r is not in the migration's directory %s" % (record.get("warmup_path"), src_work))
    if not isinstance(record.get("waiter_jid"), str) or not JOB_ID.match(record["waiter_jid"]):
        problems.append("waiter_jid %r is not a background job's id" % (record.get("waiter_jid"),))
    if source_storage is not None:
        problems += _tree_problems(record.get("fs_final_trees", []), src_work, source_storage, destination_storage)
        problems += _volume_problems(record.get("disk", {}), source_storage)
    return problems


class FilterModule:
    def filters(self):
        return {"prepared_record_problems": prepared_record_problems}
