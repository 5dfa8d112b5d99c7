"""A prepared record found on an edge is checked against the inventory before a finish acts on
it (filter_plugins/edge_prepared_check.py)."""

import pytest
from ansible.module_utils import edge_async_job
from edge_prepared_check import JOB_ID, prepared_record_problems

STRATEGIES = ["delta", "iterative", "rsync"]
EXPECTED = {"src_work": "/var/lib/em/svc-20260101T000000", "dst_work": "/srv/em/svc-20260101T000000",
            "dest_address": "10.0.0.12", "src_docker": "unix:///var/run/docker.sock",
            "dst_docker": "unix:///var/run/docker.sock", "src_exec_root": "/run/docker"}


def record(**changes):
    base = dict(EXPECTED, migration_id="svc-20260101T000000", service="svc", source="edge1", destination="edge2",
                strategy="delta", warmup_path=EXPECTED["src_work"] + "/warmup", waiter_jid="j123456.789",
                fs_final_trees=[], disk={"copy_layer": False, "volumes": [], "copied_volumes": []})
    base.update(changes)
    return base


def test_a_record_as_a_prepare_wrote_it_passes():
    assert prepared_record_problems(record(), EXPECTED, STRATEGIES) == []


@pytest.mark.parametrize("field, value", [
    ("dest_address", "10.0.0.66"),  # the push would go to another host
    ("dst_work", "/srv/em/other"),
    ("src_docker", "tcp://10.0.0.66:2375"),  # the freeze would ask another engine
    ("src_exec_root", "/run/other"),
    ("src_work", "/var/lib/em/other-20260101T000000"),
])
def test_a_path_or_address_the_inventory_does_not_give_is_refused(field, value):
    problems = prepared_record_problems(record(**{field: value}), EXPECTED, STRATEGIES)
    assert len(problems) == 1 and problems[0].startswith(field) and value in problems[0]


@pytest.mark.parametrize("changes", [
    {"strategy": "cold"}, {"warmup_path": "/"}, {"warmup_path": EXPECTED["src_work"]},
    {"warmup_path": EXPECTED["src_work"] + "/../../../etc"}, {"waiter_jid": "../../etc/passwd"}, {"waiter_jid": None},
    {"waiter_jid": "j1.1\n"},
])
def test_a_strategy_warmup_path_or_job_id_it_cannot_have_is_refused(changes):
    assert len(prepared_record_problems(record(**changes), EXPECTED, STRATEGIES)) == 1


def test_a_workdir_written_with_a_trailing_slash_is_the_same_directory():
    expected = dict(EXPECTED, src_work="/var/lib/em//svc-20260101T000000")
    ok = record(src_work=expected["src_work"], warmup_path="/var/lib/em//svc-20260101T000000/warmup")
    assert prepared_record_problems(ok, expected, STRATEGIES) == []


def test_the_job_id_is_the_one_the_destination_reads_a_status_file_by():
    assert JOB_ID.pattern == edge_async_job.JOB_ID.pattern
