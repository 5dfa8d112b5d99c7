"""A prepared record found on an edge is checked against the inventory and the service's own
containers before a finish acts on it (filter_plugins/edge_prepared_check.py)."""

import pytest
from edge_prepared_check import prepared_record_problems

STRATEGIES = ["delta", "iterative", "rsync"]
EXPECTED = {"src_work": "/var/lib/em/svc-20260101T000000", "dst_work": "/srv/em/svc-20260101T000000",
            "dest_address": "10.0.0.12", "src_docker": "unix:///var/run/docker.sock",
            "dst_docker": "unix:///var/run/docker.sock", "src_exec_root": "/run/docker"}
SOURCE = {"upper_dir": "/var/lib/docker/overlay2/aaa/diff",
          "mounts": [{"type": "volume", "name": "svc-data", "source": "/var/lib/docker/volumes/svc-data/_data",
                      "destination": "/data", "copyable": True},
                     {"type": "bind", "name": "", "source": "/etc", "destination": "/host-etc"}]}
DESTINATION = {"upper_dir": "/var/lib/docker/overlay2/bbb/diff",
               "mounts": [{"type": "volume", "name": "svc-data", "source": "/var/lib/docker/volumes/svc-data/_data",
                           "destination": "/data", "copyable": True}]}


def record(**changes):
    base = dict(EXPECTED, migration_id="svc-20260101T000000", service="svc", source="edge1", destination="edge2",
                strategy="delta", warmup_path=EXPECTED["src_work"] + "/warmup", waiter_jid="j123456.789",
                fs_final_trees=[{"src": SOURCE["upper_dir"], "dest": DESTINATION["upper_dir"], "since": 17e8,
                                 "listing": EXPECTED["src_work"] + "/disk-0.listing"},
                                {"src": SOURCE["mounts"][0]["source"], "dest": DESTINATION["mounts"][0]["source"]}],
                disk={"volumes": [{"name": "svc-data"}], "copied_volumes": [{"name": "svc-data"}]})
    base.update(changes)
    return base


def test_a_record_as_a_prepare_wrote_it_passes():
    assert prepared_record_problems(record(), EXPECTED, STRATEGIES, SOURCE, DESTINATION) == []


@pytest.mark.parametrize("field, value", [
    ("dest_address", "10.0.0.66"),  # the push would go to another host
    ("dst_work", "/srv/em/other"),
    ("src_docker", "tcp://10.0.0.66:2375"),  # the freeze would ask another engine
    ("src_exec_root", "/run/other"),
    ("src_work", "/var/lib/em/other-20260101T000000"),
])
def test_a_path_or_address_the_inventory_does_not_give_is_refused(field, value):
    problems = prepared_record_problems(record(**{field: value}), EXPECTED, STRATEGIES, SOURCE, DESTINATION)
    assert len(problems) == 1 and problems[0].startswith(field) and value in problems[0]


def test_a_tree_outside_the_services_own_files_is_refused():
    stolen = record(fs_final_trees=[{"src": "/root/.ssh", "dest": DESTINATION["upper_dir"]}])
    problems = prepared_record_problems(stolen, EXPECTED, STRATEGIES, SOURCE, DESTINATION)
    assert problems == ["fs_final_trees would push '/root/.ssh', which is not the service's layer or one of its "
                        "volumes on the source"]
    planted = record(fs_final_trees=[{"src": SOURCE["upper_dir"], "dest": "/etc/cron.d"}])
    assert "/etc/cron.d" in prepared_record_problems(planted, EXPECTED, STRATEGIES, SOURCE, DESTINATION)[0]
    bind = record(fs_final_trees=[{"src": "/etc", "dest": DESTINATION["upper_dir"]}])  # a bind mount is not copied
    assert len(prepared_record_problems(bind, EXPECTED, STRATEGIES, SOURCE, DESTINATION)) == 1


@pytest.mark.parametrize("tree", [
    {"src": SOURCE["upper_dir"], "dest": DESTINATION["upper_dir"], "listing": "/etc/shadow"},
    {"src": SOURCE["upper_dir"], "dest": DESTINATION["upper_dir"], "listing": EXPECTED["src_work"] + "/../../x"},
    {"src": SOURCE["upper_dir"], "dest": DESTINATION["upper_dir"], "since": "yesterday"},
    {"src": SOURCE["upper_dir"], "dest": DESTINATION["upper_dir"], "exclude": "*"},
    "/root",
])
def test_a_tree_with_a_foreign_listing_or_unknown_keys_is_refused(tree):
    assert len(prepared_record_problems(record(fs_final_trees=[tree]), EXPECTED, STRATEGIES, SOURCE, DESTINATION)) == 1


def test_a_volume_of_another_container_is_not_deleted_on_the_source():
    forged = record(disk={"volumes": [], "copied_volumes": [{"name": "billing-db"}]})
    assert prepared_record_problems(forged, EXPECTED, STRATEGIES, SOURCE, DESTINATION) == [
        "disk.copied_volumes names 'billing-db', which is not a volume of the service's container on the source"]


@pytest.mark.parametrize("changes", [
    {"strategy": "cold"}, {"warmup_path": "/"}, {"warmup_path": EXPECTED["src_work"]},
    {"warmup_path": EXPECTED["src_work"] + "/../../../etc"}, {"waiter_jid": "../../etc/passwd"}, {"waiter_jid": None},
])
def test_a_strategy_warmup_path_or_job_id_it_cannot_have_is_refused(changes):
    assert len(prepared_record_problems(record(**changes), EXPECTED, STRATEGIES, SOURCE, DESTINATION)) == 1


def test_this_controllers_own_record_is_checked_against_the_inventory_only():
    # The pointer path has no edge round: no storage to compare the trees with.
    assert prepared_record_problems(record(), EXPECTED, STRATEGIES) == []
    assert len(prepared_record_problems(record(dest_address="10.0.0.66"), EXPECTED, STRATEGIES)) == 1


def test_without_the_destinations_container_no_tree_may_be_written():
    problems = prepared_record_problems(record(), EXPECTED, STRATEGIES, SOURCE, {})
    assert len(problems) == 2 and all("destination's container" in p for p in problems)
