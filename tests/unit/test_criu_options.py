"""CRIU options chosen per container, and containerd's checkpoint copies found for removal."""

import os

import pytest
from ansible.module_utils import edge_images
from ansible.module_utils.edge_criu_options import (
    RESTORE_CONF,
    criu_errors,
    has_cap_sys_resource,
    io_uring_holders,
    lock_holders,
    process_tree,
    process_uids,
    restore_options,
    write_restore_conf,
)
from ansible.module_utils.edge_engine_tmp import stale_checkpoint_copies

LOCKS = """1: POSIX  ADVISORY  WRITE 31812 00:2a:1515710 0 EOF
2: FLOCK  ADVISORY  WRITE 4242 00:2a:1515702 0 EOF
2: -> FLOCK  ADVISORY  WRITE 777 00:2a:1515702 0 EOF
3: OFDLCK ADVISORY  READ -1 00:06:3 0 EOF
"""


def test_lock_holders_are_read_from_proc_locks_without_waiters():
    assert lock_holders(LOCKS) == {31812, 4242, -1}


def test_process_tree_follows_parent_pids(tmp_path):
    for pid, ppid, comm in ((10, 1, "init"), (11, 10, "sh"), (12, 11, "a b) (c"), (20, 1, "other")):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text("%d (%s) S %d 0 0\n" % (pid, comm, ppid))
    assert process_tree(10, proc=str(tmp_path)) == {10, 11, 12}


def test_restore_options_follow_the_container_and_its_images(tmp_path):
    assert restore_options({}, str(tmp_path)) == []
    assert restore_options({"Init": True}, str(tmp_path)) == ["mntns-compat-mode"]
    (tmp_path / "filelocks.img").write_bytes(b"\0" * 8)  # magic only: no lock was dumped
    assert restore_options({}, str(tmp_path), trial=True) == ["leave-stopped"]
    (tmp_path / "filelocks.img").write_bytes(b"\0" * 40)
    assert restore_options({"Init": True}, str(tmp_path)) == ["mntns-compat-mode", "file-locks"]


def test_restore_conf_is_private_and_only_known_options(tmp_path):
    assert write_restore_conf(str(tmp_path), []) is None and not (tmp_path / RESTORE_CONF).exists()
    path = write_restore_conf(str(tmp_path), ["mntns-compat-mode", "leave-stopped"])
    assert open(path).read() == "mntns-compat-mode\nleave-stopped\n"
    assert os.stat(path).st_mode & 0o777 == 0o600
    with pytest.raises(ValueError):
        write_restore_conf(str(tmp_path), ["action-script=/tmp/x"])


def test_criu_errors_are_the_first_error_lines_else_the_end(tmp_path):
    log = tmp_path / "restore.log"
    log.write_text("(0.1) start\n(0.2) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE\n"
                   "(0.3) 1: Error (criu/mount-v2.c:413): mnt-v2: Can't remount\n(0.4) Error (x): second\n")
    assert criu_errors(str(log)) == ("(0.3) 1: Error (criu/mount-v2.c:413): mnt-v2: Can't remount"
                                     " | (0.4) Error (x): second")
    log.write_text("a\nb\nc\nd\n")
    assert criu_errors(str(log)) == "b | c | d"
    assert criu_errors(str(tmp_path / "none.log")) == ""


def test_containerd_copies_ours_at_once_others_when_old_and_unused(tmp_path):
    ours, fresh, old, used, other = (tmp_path / n for n in ("ctrd-checkpoint1", "ctrd-checkpoint2",
                                                            "ctrd-checkpoint3", "ctrd-checkpoint4", "keep-me"))
    for path in (ours, fresh, old, used, other):
        path.mkdir()
    (ours / "edge-migrate-images").write_text("/work/svc-1/final")
    (fresh / "pages-1.img").write_bytes(b"x")
    now = 1000.0
    for path in (ours, fresh):
        os.utime(path, (now - 1, now - 1))
    for path in (old, used, other):
        os.utime(path, (now - 100, now - 100))
    found = stale_checkpoint_copies([str(tmp_path)], "/work/svc-1", older_than=60, now=now,
                                    in_use={str(used / "pages-1.img")})
    assert found == [str(ours), str(old)]


def test_process_uids_and_the_capability_are_read_from_proc(tmp_path):
    for pid, ppid, uid in ((10, 1, 0), (11, 10, 999), (20, 1, 1000)):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text("%d (p) S %d 0 0\n" % (pid, ppid))
        (tmp_path / str(pid) / "status").write_text("Name:\tp\nUid:\t%d\t%d\t%d\t%d\n" % ((uid,) * 4))
    assert process_uids(10, proc=str(tmp_path)) == [0, 999]
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "status").write_text("CapEff:\t000001fffeffffff\n")  # bit 24 missing
    assert has_cap_sys_resource(proc=str(tmp_path)) is False
    (tmp_path / "self" / "status").write_text("CapEff:\t000001ffffffffff\n")
    assert has_cap_sys_resource(proc=str(tmp_path)) is True


def test_io_uring_holders_are_found_by_their_file_descriptors(tmp_path):
    for pid, ppid, comm, links in ((10, 1, "sh", ["/dev/null", "pipe:[12]"]),
                                   (11, 10, "mariadbd", ["socket:[7]", "anon_inode:[io_uring]"]),
                                   (12, 10, "gone", None),
                                   (20, 1, "other", ["anon_inode:[io_uring]"])):
        (tmp_path / str(pid)).mkdir()
        (tmp_path / str(pid) / "stat").write_text("%d (%s) S %d 0 0\n" % (pid, comm, ppid))
        (tmp_path / str(pid) / "comm").write_text(comm + "\n")
        if links is not None:
            (tmp_path / str(pid) / "fd").mkdir()
            for fd, target in enumerate(links):
                os.symlink(target, tmp_path / str(pid) / "fd" / str(fd))
    assert io_uring_holders(10, proc=str(tmp_path)) == ["11 (mariadbd)"]
    assert io_uring_holders(10, proc=str(tmp_path), members={10, 12}) == []


def test_one_call_removes_containerd_copies_and_the_migration_directory(tmp_path, run_module):
    work = tmp_path / "svc-1"
    (work / "final").mkdir(parents=True)
    (work / "final" / "pages-1.img").write_bytes(b"p" * 4096)
    tmp = tmp_path / "tmp"
    copy = tmp / "ctrd-checkpoint1"
    copy.mkdir(parents=True)
    (copy / "edge-migrate-images").write_text(str(work / "final"))
    args = {"images_under": str(work), "tmp_dirs": [str(tmp)], "older_than": 2}
    # Without remove_images_under the migration's own directory stays (a kept final checkpoint).
    status, kept = run_module("edge_engine_temporaries", dict(args, _ansible_check_mode=True))
    assert status == "exit" and kept["removed"] == [str(copy)] and kept["images_under_absent"] is False
    status, planned = run_module("edge_engine_temporaries", dict(args, remove_images_under=True,
                                                                 _ansible_check_mode=True))
    assert planned["removed"] == [str(copy), str(work)] and planned["bytes"] >= 4096
    assert work.exists() and copy.exists()
    status, done = run_module("edge_engine_temporaries", dict(args, remove_images_under=True))
    assert status == "exit" and done["changed"] and done["images_under_absent"] is True
    assert not work.exists() and not copy.exists()
    status, again = run_module("edge_engine_temporaries", dict(args, remove_images_under=True))
    assert not again["changed"] and again["removed"] == [] and again["images_under_absent"] is True
    status, refused = run_module("edge_engine_temporaries", {"remove_images_under": True})
    assert status == "fail" and "images_under" in refused["msg"]


def test_copies_another_cleanup_removes_meanwhile_do_not_keep_the_migrations_images(tmp_path, run_module,
                                                                                    monkeypatch):
    work = tmp_path / "svc-2"
    tmp = tmp_path / "tmp"

    def migration_and_copy(name):
        (work / "final").mkdir(parents=True)
        (work / "final" / "pages-1.img").write_bytes(b"p" * 4096)
        (tmp / name).mkdir(parents=True)
        (tmp / name / "pages-1.img").write_bytes(b"q" * 4096)
        (tmp / name / "edge-migrate-images").write_text(str(work / "final"))

    args = {"images_under": str(work), "tmp_dirs": [str(tmp)], "older_than": 2, "remove_images_under": True}
    real_unlink = os.unlink

    def unlinked_by_another_cleanup_first(path, *rest, **kwargs):
        real_unlink(path, *rest, **kwargs)
        if "pages" in str(path):
            raise FileNotFoundError(2, "No such file or directory", path)

    migration_and_copy("ctrd-checkpoint-shared")
    with monkeypatch.context() as patched:
        patched.setattr(os, "unlink", unlinked_by_another_cleanup_first)
        status, result = run_module("edge_engine_temporaries", args)
    assert status == "exit" and result["images_under_absent"] and not work.exists()
    assert not (tmp / "ctrd-checkpoint-shared").exists()

    real_remove_tree = edge_images.remove_tree

    def locked(path):
        if path.endswith("locked"):
            raise PermissionError(13, "Permission denied", path)
        return real_remove_tree(path)

    migration_and_copy("ctrd-checkpoint-locked")
    monkeypatch.setattr(edge_images, "remove_tree", locked)
    status, result = run_module("edge_engine_temporaries", args)
    assert status == "fail" and "ctrd-checkpoint-locked: [Errno 13]" in result["msg"]
    assert not work.exists()  # the migration's own images are removed all the same


def test_a_file_held_open_after_its_deletion_sets_the_ghost_limit_of_the_dump(tmp_path):
    from ansible.module_utils.edge_criu_options import CRIU_GHOST_LIMIT, ghost_limit, largest_ghost_file
    me = os.getpid()
    before = largest_ghost_file(me, members={me})
    path = tmp_path / "upload.tmp"
    with open(path, "wb") as held:
        held.write(b"x" * (3 << 20))
        held.flush()
        os.unlink(path)
        # This process's own /proc: the deleted file's size is read through its descriptor.
        assert largest_ghost_file(me, members={me}) == max(before, 3 << 20)
    assert ghost_limit(0) is None and ghost_limit(CRIU_GHOST_LIMIT // 2) is None
    assert ghost_limit(3 << 20) == (3 << 20) + (64 << 20)
    assert ghost_limit(1 << 30) == 2 << 30
    assert largest_ghost_file(0) == 0
