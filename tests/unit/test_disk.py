"""A service's files: what moves with it (filters), how trees are walked, compared and pushed
(module_utils/edge_fs), the modules' argument handling, the report's disk section."""

import os
import time

import pytest
from ansible.module_utils import edge_fs, edge_report
from edge_catalog import service_config
from edge_disk import disk_plan, disk_since, disk_trees, engine_storage_blocker
from edge_hooks import published_ports

UPPER = "/d/overlay2/abc/diff"


def storage(*mounts, entries=3, upper=UPPER):
    return {"image_id": "sha256:1", "layer_driver": "overlay2" if upper else "btrfs", "upper_dir": upper,
            "layer": {"entries": entries, "files": entries, "bytes": 5000000}, "mounts": list(mounts)}


def volume(name, dest="/data", anonymous=False, copyable=True, used_by=(), size=2000000, **extra):
    return dict({"type": "volume", "name": name, "source": "/d/volumes/%s/_data" % name, "destination": dest,
                 "driver": "local", "labels": {"a": "b"}, "options": {}, "anonymous": anonymous,
                 "copyable": copyable, "used_by": list(used_by), "size": {"files": 1, "bytes": size}}, **extra)


def bind(source, dest="/b"):
    return {"type": "bind", "name": None, "source": source, "destination": dest, "rw": True}


def test_a_plain_container_moves_its_layer_and_nothing_is_refused():
    plan = disk_plan(storage(), "svc", "edge1")
    assert plan["refusals"] == [] and plan["copy_layer"] is True
    assert plan["volumes"] == [] and plan["copied_volumes"] == [] and plan["bytes"] == 5000000
    assert plan["summary"] == "its layer (3 files, 5.0 MB)"


def test_bind_mounts_are_refused_with_why_and_what_to_do():
    plan = disk_plan(storage(bind("/srv/data")), "svc", "edge1")
    assert len(plan["refusals"]) == 1
    message = plan["refusals"][0]
    assert "'svc' on edge1 has bind mounts (/srv/data -> /b)" in message
    assert "named volume" in message and "-e shared_bind_mounts=true" in message


@pytest.mark.parametrize("shared", [True, "true", "yes", ["/srv"], "/srv/data", "/other,/srv/data/"])
def test_bind_mounts_declared_shared_move_as_they_are(shared):
    plan = disk_plan(storage(bind("/srv/data")), "svc", "edge1", shared_bind_mounts=shared)
    assert plan["refusals"] == [] and "shared bind mount /srv/data" in plan["summary"]


@pytest.mark.parametrize("shared", [False, "false", "", ["/srv/dat"], "/srv/other"])
def test_other_paths_do_not_make_a_bind_mount_shared(shared):
    assert disk_plan(storage(bind("/srv/data")), "svc", "edge1", shared_bind_mounts=shared)["refusals"]


def test_volumes_need_migrate_volumes():
    plan = disk_plan(storage(volume("notes"), volume("f00d", "/var/cache", anonymous=True)), "svc", "edge1")
    assert len(plan["refusals"]) == 1
    assert "volume notes at /data, 2.0 MB" in plan["refusals"][0]
    assert "an anonymous volume at /var/cache" in plan["refusals"][0]
    assert "-e migrate_volumes=true" in plan["refusals"][0]


def test_volumes_move_with_migrate_volumes():
    plan = disk_plan(storage(volume("notes"), volume("f00d", "/var/cache", anonymous=True),
                             volume("nfs", "/shared", copyable=False, options={"type": "nfs"})),
                     "svc", "edge1", migrate_volumes="true")
    assert plan["refusals"] == []
    # Named volumes are made on the destination; the engine makes the anonymous one itself.
    assert [v["name"] for v in plan["volumes"]] == ["notes", "nfs"]
    assert plan["volumes"][1]["options"] == {"type": "nfs"}
    assert [v["name"] for v in plan["copied_volumes"]] == ["notes", "f00d"]
    assert plan["bytes"] == 5000000 + 2 * 2000000
    assert "its content stays on its storage" in plan["summary"]


def test_a_volume_shared_with_another_container_is_refused():
    plan = disk_plan(storage(volume("notes", used_by=["other"])), "svc", "edge1", migrate_volumes=True)
    assert "shares volume notes with other" in plan["refusals"][0]


def test_layer_of_another_storage_driver():
    plan = disk_plan(storage(upper=None), "svc", "edge1")
    assert "only overlay2 layers can be copied" in plan["refusals"][0]
    plan = disk_plan(storage(upper=None), "svc", "edge1", migrate_layer="false")
    assert plan["refusals"] == [] and plan["copy_layer"] is False


def test_a_layer_in_the_containerd_image_store_is_refused_naming_the_store():
    source = dict(storage(upper=None), layer_driver="overlayfs", driver="overlayfs", image_store="containerd")
    refusals = disk_plan(source, "svc", "sid1")["refusals"]
    assert len(refusals) == 1
    assert "'svc' on sid1 keeps images and container layers in the containerd image store" in refusals[0]
    assert "no containerd-snapshotter in the features of its daemon.json" in refusals[0]
    assert disk_plan(source, "svc", "sid1", migrate_layer=False)["refusals"] == refusals


def test_an_engine_that_cannot_take_part_is_refused_before_anything_is_created():
    plan = disk_plan(storage(), "svc", "edge1")
    containerd = {"driver": "overlayfs", "image_store": "containerd"}
    assert "edge2 keeps images and container layers in the containerd image store" in \
        engine_storage_blocker(containerd, plan, "edge2")
    assert "edge2 uses the storage driver btrfs" in \
        engine_storage_blocker({"driver": "btrfs", "image_store": "graphdriver"}, plan, "edge2")
    assert engine_storage_blocker({"driver": "overlay2", "image_store": "graphdriver"}, plan, "edge2") == ""
    no_layer = disk_plan(storage(), "svc", "edge1", migrate_layer=False)
    assert engine_storage_blocker(containerd, no_layer, "edge2")  # the image cannot be identified either
    assert engine_storage_blocker({"driver": "btrfs", "image_store": "graphdriver"}, no_layer, "edge2") == ""


def test_seed_delta_does_not_move_files_so_it_refuses_them():
    assert "seed-delta" in disk_plan(storage(), "svc", "edge1", strategy="seed-delta")["refusals"][0]
    plan = disk_plan(storage(entries=0), "svc", "edge1", strategy="seed-delta")
    assert plan["refusals"] == [] and plan["copy_layer"] is False


def test_no_container_no_plan():
    plan = disk_plan({}, "svc")
    assert plan["refusals"] == [] and plan["copy_layer"] is False and plan["summary"] == "nothing on disk"


def test_trees_pair_source_and_destination_by_mount_path():
    plan = disk_plan(storage(volume("notes"), volume("f00d", "/var/cache", anonymous=True)), "svc", "edge1",
                     migrate_volumes=True)
    destination = storage(volume("notes"), volume("beef", "/var/cache", anonymous=True), upper="/e/overlay2/x/diff")
    trees = disk_trees(destination, storage(volume("notes"), volume("f00d", "/var/cache", anonymous=True)), plan)
    assert trees == [
        {"src": UPPER, "dest": "/e/overlay2/x/diff", "what": "layer"},
        {"src": "/d/volumes/notes/_data", "dest": "/d/volumes/notes/_data", "what": "volume notes"},
        {"src": "/d/volumes/f00d/_data", "dest": "/d/volumes/beef/_data", "what": "volume f00d"},
    ]
    with pytest.raises(Exception, match="no plain local volume at /var/cache"):
        disk_trees(storage(volume("notes")), storage(), plan)
    with pytest.raises(Exception, match="no overlay2 layer"):
        disk_trees(storage(upper=None), storage(), plan)


@pytest.mark.parametrize("options, what", [
    ({"type": "tmpfs", "device": "tmpfs", "o": "size=10m"}, "a tmpfs, its content in the memory of edge1"),
    ({"type": "none", "device": "/srv/notes", "o": "bind"}, "a bind of the directory /srv/notes of edge1"),
    ({"type": "ext4", "device": "/dev/sdb1"}, "a ext4 file system on /dev/sdb1 of edge1"),
])
def test_a_volume_whose_options_mount_something_of_the_source_host_is_refused(options, what):
    # The destination would create it the same way and mount its own (empty) one over what was copied.
    plan = disk_plan(storage(volume("scratch", copyable=False, options=options)), "svc", "edge1",
                     migrate_volumes=True)
    assert len(plan["refusals"]) == 1
    message = plan["refusals"][0]
    assert "'svc' on edge1 keeps volume scratch at /data in %s" % what in message
    assert "--tmpfs" in message and "plain named volume" in message
    assert "size=10m" not in message  # mount options can hold credentials


@pytest.mark.parametrize("options", [{"type": "nfs", "device": ":/export", "o": "addr=10.0.0.9,rw"},
                                     {"type": "cifs", "device": "//nas/share", "o": "username=u,password=p"},
                                     {"type": "none", "device": "/mnt/cluster/notes", "o": "bind"}])
def test_a_volume_on_storage_every_edge_mounts_is_created_the_same_way(options):
    plan = disk_plan(storage(volume("notes", copyable=False, options=options)), "svc", "edge1",
                     migrate_volumes=True, shared_bind_mounts="/mnt/cluster")
    assert plan["refusals"] == [] and plan["copied_volumes"] == []
    assert plan["volumes"] == [{"name": "notes", "driver": "local", "labels": {"a": "b"}, "options": options}]


def test_a_volume_of_a_driver_plugin_keeps_its_content_on_its_storage():
    plan = disk_plan(storage(volume("notes", copyable=False, driver="rexray/ebs", options={"size": "5"})),
                     "svc", "edge1", migrate_volumes=True)
    assert plan["refusals"] == [] and "its content stays on its storage" in plan["summary"]


def test_the_new_containers_placement_pairs_the_same_trees_and_leaves_volume_options_out():
    plan = disk_plan(storage(volume("notes"), volume("f00d", "/var/cache", anonymous=True)), "svc", "edge1",
                     migrate_volumes=True)
    secret = {"type": "cifs", "o": "username=svc,password=hunter2"}
    destination = storage(volume("notes", options=secret, labels={"team": "x"}, used_by=["other"]),
                          volume("beef", "/var/cache", anonymous=True), upper="/e/overlay2/x/diff")
    placed = edge_fs.placement(destination)
    assert "hunter2" not in repr(placed) and "team" not in repr(placed) and "other" not in repr(placed)
    assert placed["image_id"] == destination["image_id"] and placed["upper_dir"] == "/e/overlay2/x/diff"
    source = storage(volume("notes"), volume("f00d", "/var/cache", anonymous=True))
    assert disk_trees(placed, source, plan) == disk_trees(destination, source, plan)


def test_the_freeze_pushes_each_tree_with_the_start_of_its_warm_up_push():
    trees = [{"src": "/a", "dest": "/x", "what": "layer"}, {"src": "/b", "dest": "/y", "what": "volume v"}]
    warmup = {"results": [{"item": trees[0], "started_at": 100.5, "listing": "/w/disk-0.listing"},
                          {"item": trees[1], "started_at": 101.0}]}
    assert disk_since(trees, warmup) == [{"src": "/a", "dest": "/x", "since": 100.5, "listing": "/w/disk-0.listing"},
                                         {"src": "/b", "dest": "/y", "since": 101.0}]
    assert disk_since(trees, {}) == [{"src": "/a", "dest": "/x"}, {"src": "/b", "dest": "/y"}]


def test_published_ports_for_the_hook():
    config = {"HostConfig": {"PortBindings": {"9999/tcp": [{"HostIp": "", "HostPort": "19999"}],
                                              "53/udp": [{"HostPort": "5353"}], "80/tcp": None}}}
    assert published_ports(config) == "53/udp=5353 9999/tcp=19999"
    assert published_ports({}) == ""


def test_catalog_volumes_become_binds():
    config = service_config({"name": "notes", "image": "r/n", "volumes": {"notes-data": "/data", "/srv/x": "/x"}})
    assert config["HostConfig"]["Binds"] == ["/srv/x:/x", "notes-data:/data"]
    assert "Binds" not in service_config({"name": "n", "image": "r/n"})["HostConfig"]


def make_tree(root):
    os.makedirs(root / "d")
    (root / "d" / "f").write_bytes(b"x" * 1000)
    (root / "g").write_bytes(b"y" * 10)
    os.symlink("d/f", root / "link")
    os.link(root / "g", root / "g2")


def test_tree_stats_counts_entries_files_and_bytes(tmp_path):
    make_tree(tmp_path)
    assert edge_fs.tree_stats(str(tmp_path)) == {"entries": 4, "files": 3, "bytes": 1020}
    assert edge_fs.tree_stats(str(tmp_path / "missing")) is None


def later():
    """An epoch time after every change made so far and before every change made next
    (inode times come from a coarse clock)."""
    time.sleep(0.05)
    moment = time.time()
    time.sleep(0.05)
    return moment


def test_changed_since_sees_writes_deletions_renames_and_attributes(tmp_path, monkeypatch):
    monkeypatch.setattr(edge_fs, "CTIME_SLACK_S", 0.0)
    make_tree(tmp_path)
    assert not edge_fs.changed_since(str(tmp_path), later())
    for change in (lambda: (tmp_path / "d" / "f").write_bytes(b"z"),
                   lambda: os.remove(tmp_path / "g2"),
                   lambda: os.rename(tmp_path / "d" / "f", tmp_path / "d" / "h"),
                   lambda: os.chmod(tmp_path / "g", 0o600),
                   lambda: os.mkdir(tmp_path / "d" / "new")):
        since = later()
        assert not edge_fs.changed_since(str(tmp_path), since)
        change()
        assert edge_fs.changed_since(str(tmp_path), since)


def test_push_tree_keeps_what_overlay_needs_and_skips_an_unchanged_tree(tmp_path, monkeypatch):
    monkeypatch.setattr(edge_fs, "CTIME_SLACK_S", 0.0)
    make_tree(tmp_path)
    seen = []

    def run(argv):
        seen.append(argv)
        return 0, "Total bytes sent: 1,234\nNumber of regular files transferred: 2\n", ""

    stats = edge_fs.push_tree(run, str(tmp_path), "10.0.0.2", "/e/overlay2/x/diff", ssh_key="/k")
    argv = seen[0]
    assert {"-a", "--hard-links", "--acls", "--xattrs", "--numeric-ids", "--delete"} <= set(argv)
    assert argv[-2:] == [str(tmp_path) + "/", "root@10.0.0.2:/e/overlay2/x/diff/"]
    assert stats["bytes_sent"] == 1234 and stats["unchanged"] is False and stats["started_at"] > 0

    stats = edge_fs.push_tree(run, str(tmp_path), "10.0.0.2", "/e/x", since=later())
    assert stats["unchanged"] is True and stats["bytes_sent"] == 0 and len(seen) == 1


def test_push_trees_runs_every_push_and_raises_the_failure(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    calls = []

    def run(argv):
        calls.append(argv[-2])
        return (23, "", "rsync: some files vanished") if argv[-2].endswith("/a/") else (0, "", "")

    trees = [{"src": str(tmp_path / "a"), "dest": "/x"}, {"src": str(tmp_path / "b"), "dest": "/y"}]
    with pytest.raises(Exception, match="rsync from .*/a to h:/x failed"):
        edge_fs.push_trees(run, trees, "h")
    assert len(calls) == 2
    assert edge_fs.push_trees(run, [], "h") == []


def test_report_has_the_disk_section():
    results = {"fs_warmup": {"results": [{"bytes_sent": 20000000, "duration_s": 2.0, "started_at": 1},
                                         {"bytes_sent": 1000, "duration_s": 0.5, "started_at": 1}]},
               "freeze": {"phases": {"final_fs_sync": 0.7},
                          "fs_sync": [{"bytes_sent": 3000000, "duration_s": 0.7, "unchanged": False},
                                      {"bytes_sent": 0, "duration_s": 0.01, "unchanged": True}]}}
    request = {"migration_id": "m", "service": "s", "source": "a", "destination": "b", "strategy": "delta",
               "outcome": "migrated", "cause": "", "started_at": 1000.0, "finished_at": 1010.0}
    report = edge_report.build(request, results)
    assert report["disk"] == {"directories": 2, "bytes_warmup": 20001000, "bytes_freeze": 3000000,
                              "warmup_s": 2.5, "freeze_s": 0.7, "unchanged_in_freeze": 1}
    assert report["phases"]["final_fs_sync"] == 0.7 and report["phases"]["pre_fs_sync"] == 2.5
    assert any(line.startswith("disk (layer and volumes, 2 directories)") for line in edge_report.summary(report))
    # Cold: the pushes after the stop run one after the other.
    cold = dict(results, freeze={}, fs_final={"results": [{"bytes_sent": 5, "duration_s": 0.5},
                                                          {"bytes_sent": 5, "duration_s": 0.25}]})
    assert edge_report.build(dict(request, strategy="cold"), cold)["disk"]["freeze_s"] == 0.75
    assert edge_report.build(request, {})["disk"] is None


NO_DOCKER = "unix:///nonexistent/docker.sock"


@pytest.mark.parametrize("name,args,message", [
    ("edge_fs_sync", {"src": "/nonexistent/upper", "dest_host": "h", "dest_dir": "/d"},
     "src /nonexistent/upper is not a directory on this host"),
    ("edge_fs_sync", {"src": "/tmp"}, "missing required arguments: dest_dir, dest_host"),
    ("edge_volume", {"volumes": [{"driver": "local"}], "docker_host": NO_DOCKER}, "every volume needs a name"),
    ("edge_volume", {"volumes": [{"name": "v"}], "state": "gone"}, "value of state must be one of: present, absent"),
    ("edge_volume", {"volumes": [{"name": "v"}], "docker_host": NO_DOCKER}, "cannot reach the Docker Engine"),
    ("edge_freeze", {"name": "web", "checkpoint_dir": "/w", "dest_host": "h", "dest_dir": "/d", "mode": "whole",
                     "also_push": [{"src": "/a"}]}, "missing required arguments: dest"),
    ("edge_container_info", {"name": "web", "docker_host": NO_DOCKER}, "cannot reach the Docker Engine"),
])
def test_disk_modules_reject_bad_arguments(run_module, name, args, message):
    outcome, result = run_module(name, args)
    assert outcome == "fail"
    assert message in result["msg"]


def test_fs_sync_to_an_unreachable_host_fails_with_rsync_details(run_module, tmp_path):
    outcome, result = run_module("edge_fs_sync", {"src": str(tmp_path), "dest_host": "127.0.0.1", "ssh_port": 1,
                                                  "dest_dir": "/tmp/x", "timeout": 5})
    assert outcome == "fail" and "rsync from" in result["msg"] and "--xattrs" in result["cmd"]


def test_a_directory_touched_by_a_checkpoint_is_not_pushed_again_but_real_changes_are(tmp_path, monkeypatch):
    """A checkpoint makes and removes an entry in the container's /tmp: the directory's change
    time moves, nothing else. A directory that changed while the warm-up push ran is never
    trusted, whatever it holds later."""
    monkeypatch.setattr(edge_fs, "CTIME_SLACK_S", 0.0)
    tree = tmp_path / "upper"
    (tree / "tmp").mkdir(parents=True)
    (tree / "busy").mkdir()
    (tree / "tmp" / "kept").write_text("x")
    listing = str(tmp_path / "disk-0.listing")
    busy = []

    def run(argv):  # the push; with busy, the service makes and removes a file in busy/ meanwhile
        if busy:
            # File times come from the kernel's coarse clock (a tick behind time.time()): a
            # change in the push's first tick could carry a time before the push began.
            time.sleep(0.02)
            (tree / "busy" / "scratch").write_text("y")
            os.remove(tree / "busy" / "scratch")
        return 0, "Total bytes sent: 10\n", ""

    def warm_up():
        later()
        warm = edge_fs.push_tree(run, str(tree), "h", "/d", listing=listing)
        assert warm["listing"] == listing and oct(os.stat(listing).st_mode & 0o777) == "0o600"
        later()
        return warm["started_at"]

    since = warm_up()
    (tree / "tmp" / ".criu.tmp").mkdir()
    os.rmdir(tree / "tmp" / ".criu.tmp")
    assert edge_fs.changed_since(str(tree), since)  # by times alone
    assert edge_fs.push_tree(run, str(tree), "h", "/d", since=since, listing=listing)["unchanged"] is True
    os.chmod(tree / "tmp", 0o700)
    assert edge_fs.changed_since(str(tree), since, edge_fs._read_listing(listing))
    os.chmod(tree / "tmp", 0o755)
    (tree / "tmp" / "kept").unlink()
    assert edge_fs.changed_since(str(tree), since, edge_fs._read_listing(listing))

    busy.append(True)
    since = warm_up()
    assert "busy" not in edge_fs._read_listing(listing)
    assert edge_fs.push_tree(run, str(tree), "h", "/d", since=since, listing=listing)["unchanged"] is False


def test_the_listing_goes_in_a_private_directory_made_for_it(tmp_path):
    (tmp_path / "upper").mkdir()
    listing = tmp_path / "work" / "m1" / "disk-0.listing"  # cold: no checkpoint made the directory
    edge_fs.push_tree(lambda argv: (0, "", ""), str(tmp_path / "upper"), "h", "/d", listing=str(listing))
    assert listing.is_file() and oct(os.stat(listing.parent).st_mode & 0o777) == "0o700"
