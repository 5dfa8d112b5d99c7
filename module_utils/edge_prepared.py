"""Prepared migrations: the warm-up done, the freeze still to come. Each one is a record
(prepared.json, 0600) in the migration's own directory on the source edge, next to the
warm-up checkpoint it describes, so that any controller can finish or cancel it."""

import json
import math
import os
import re
import time

from ansible.module_utils.edge_private_dir import replace_own_file

RECORD = "prepared.json"
# A record taken by a finish: from then on the migration is an ordinary one (a killed finish is
# recovered like any interrupted migration, not finished twice).
CLAIMED = "finishing.json"
# What a prepare run hands to its finish; anything else in a record is dropped.
FIELDS = {
    "migration_id": str, "service": str, "source": str, "destination": str, "strategy": str, "strategy_reason": str,
    "src_work": str, "dst_work": str, "dest_address": str, "src_docker": str, "dst_docker": str,
    "src_exec_root": str, "warmup_path": str, "base_sha256": dict, "compressed": bool,
    "fs_final_trees": list, "prepared_at": float, "refreshed_at": float, "expires_at": float,
    "controller": str, "disk": dict, "port_bindings": dict, "keep_source": bool, "waiter_jid": str,
}
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+$")
MIGRATION_ID = re.compile(r"^(?P<service>[a-zA-Z0-9][a-zA-Z0-9_.-]+)-\d{8}T\d{6}$")
RECORD_MAX_BYTES = 1 << 20


class RecordError(ValueError):
    """A record that is not one this tool wrote (or was changed since)."""


def _under(path, directory):
    real = os.path.realpath(path)
    return real == os.path.realpath(directory) or real.startswith(os.path.realpath(directory).rstrip("/") + "/")


def clean(record, workdir):
    """The record's known fields, checked: names, the migration's paths under workdir."""
    if not isinstance(record, dict):
        raise RecordError("a prepared record must be a mapping")
    out = {}
    for key, kind in FIELDS.items():
        if key not in record:
            continue
        value = record[key]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or (kind is float and math.isnan(value)):
            raise RecordError("field %s of a prepared record is not a %s" % (key, kind.__name__))
        out[key] = value
    match = MIGRATION_ID.match(out.get("migration_id", ""))
    if not match or match.group("service") != out.get("service"):
        raise RecordError("the prepared record's migration id %r does not name its service %r"
                          % (out.get("migration_id"), out.get("service")))
    for key in ("service", "source", "destination"):
        if not NAME.match(out.get(key, "")):
            raise RecordError("field %s of a prepared record is not a plain name: %r" % (key, out.get(key)))
    for key in ("src_work", "warmup_path"):
        if key in out and not _under(out[key], workdir):
            raise RecordError("field %s of a prepared record (%s) is not under %s" % (key, out[key], workdir))
    return out


def write(workdir, record, ttl, now=None):
    """Write the record into <workdir>/<migration id>/prepared.json; returns the record written."""
    now = time.time() if now is None else now
    record = dict(record, prepared_at=record.get("prepared_at", now), refreshed_at=now, expires_at=now + ttl)
    record = clean(record, workdir)
    directory = os.path.join(workdir, record["migration_id"])
    if not os.path.isdir(directory):
        raise RecordError("the migration's directory %s is missing on this host" % directory)
    path = os.path.join(directory, RECORD)
    replace_own_file(path, json.dumps(record, sort_keys=True))
    return record


def read(path, workdir):
    if os.path.islink(path) or os.path.getsize(path) > RECORD_MAX_BYTES:
        raise RecordError("%s is not a prepared record of this tool" % path)
    with open(path) as handle:
        try:
            return clean(json.load(handle), workdir)
        except ValueError as exc:
            raise RecordError("%s: %s" % (path, exc)) from exc


def find(workdir, service=None, now=None):
    """Prepared records under workdir (of one service), oldest first, each with `path`,
    `expired` and `age_s`; unreadable ones are returned with `error` instead."""
    now = time.time() if now is None else now
    found = []
    if not os.path.isdir(workdir):
        return found
    for entry in sorted(os.listdir(workdir)):
        match = MIGRATION_ID.match(entry)
        if not match or (service and match.group("service") != service):
            continue
        path = os.path.join(workdir, entry, RECORD)
        if not os.path.isfile(path):
            continue
        try:
            record = read(path, workdir)
        except (RecordError, OSError) as exc:
            found.append({"migration_id": entry, "path": path, "error": str(exc)})
            continue
        record.update(path=path, expired=now >= record["expires_at"], age_s=round(now - record["refreshed_at"], 1))
        found.append(record)
    return found


def claim(workdir, migration_id, now=None):
    """Take the prepared migration for its finish (atomically: a second claim fails); returns
    its record, or raises RecordError when it is not there any more or has expired."""
    now = time.time() if now is None else now
    if not MIGRATION_ID.match(migration_id or ""):
        raise RecordError("%r is not a migration id" % migration_id)
    directory = os.path.join(workdir, migration_id)
    try:
        os.rename(os.path.join(directory, RECORD), os.path.join(directory, CLAIMED))
    except FileNotFoundError as exc:
        raise RecordError("migration %s is not prepared on this host (finished, cancelled or taken by another "
                          "finish)" % migration_id) from exc
    record = read(os.path.join(directory, CLAIMED), workdir)
    if now >= record["expires_at"]:
        raise RecordError("the prepared migration %s expired %.0f s ago" % (migration_id, now - record["expires_at"]))
    return record
