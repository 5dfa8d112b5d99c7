"""A prepared migration's record, found in the source edge's workdir where other edges' keys
write too, is data from an edge: before a finish acts on it, each field that says where to
push, what to freeze and which job to read is checked against the inventory. (What moves with
the service's files is not taken from such a record at all: prepared_finish.yml takes it from
this run's answers of both edges.)"""

import os
import re

from ansible.errors import AnsibleFilterError

# Where each host's settings put a migration's directories and engines (choose.yml's paths).
INVENTORY_FIELDS = ("src_work", "dst_work", "dest_address", "src_docker", "dst_docker", "src_exec_root")
# module_utils/edge_async_job.py JOB_ID, which reads the job's status file (a unit test keeps the two equal).
JOB_ID = re.compile(r"j?[0-9]+\.[0-9]+")


def _below(path, directory):
    if not isinstance(path, str) or not path.startswith("/") or not directory.startswith("/"):
        return False
    path, directory = os.path.normpath(path), os.path.normpath(directory)
    return path != directory and path.startswith(directory.rstrip("/") + "/")


def prepared_record_problems(record, expected, strategies):
    """What is wrong with a prepared record: an empty list when a finish may act on it.

    expected: the inventory's values of INVENTORY_FIELDS for the record's source and destination.
    strategies: the strategies a migration can be prepared with."""
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
    if not isinstance(record.get("waiter_jid"), str) or not JOB_ID.fullmatch(record["waiter_jid"]):
        problems.append("waiter_jid %r is not a background job's id" % (record.get("waiter_jid"),))
    return problems


class FilterModule:
    def filters(self):
        return {"prepared_record_problems": prepared_record_problems}
