"""The edge-migrate OCI runtime wrapper rewrites only `restore --image-path` for marked
checkpoints; everything else reaches runc unchanged. (Its effect on a real restore is
covered by the lab tests.)"""

import os
import subprocess
import time

from module_runner import ROOT

WRAPPER = os.path.join(ROOT, "roles", "edge_runtime", "files", "edge-migrate-runtime")


def argv_seen_by_runc(tmp_path, *args):
    printer = tmp_path / "print-args"
    printer.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    printer.chmod(0o755)
    proc = subprocess.run([WRAPPER, *args], capture_output=True, text=True,
                          env={"EDGE_MIGRATE_RUNC": str(printer), "PATH": os.environ["PATH"]})
    return proc.returncode, proc.stdout.splitlines(), proc.stderr


def test_plain_commands_pass_through(tmp_path):
    rc, argv, _ = argv_seen_by_runc(tmp_path, "--root", "/r", "start", "abc")
    assert rc == 0 and argv == ["--root", "/r", "start", "abc"]


def test_restore_without_marker_is_unchanged(tmp_path):
    (tmp_path / "cp").mkdir()
    args = ["--root", "/r", "restore", "--image-path", str(tmp_path / "cp"), "--work-path", "/w", "abc"]
    rc, argv, _ = argv_seen_by_runc(tmp_path, *args)
    assert rc == 0 and argv == args


def test_marked_restore_reads_images_in_place(tmp_path):
    (tmp_path / "cp").mkdir()
    (tmp_path / "images with space").mkdir()
    (tmp_path / "cp" / "edge-migrate-images").write_text(str(tmp_path / "images with space"))
    rc, argv, _ = argv_seen_by_runc(tmp_path, "--root", "/r", "restore", "--detach", "--image-path",
                                    str(tmp_path / "cp"), "--work-path", "/w", "abc")
    assert rc == 0
    assert argv == ["--root", "/r", "restore", "--detach", "--image-path", str(tmp_path / "images with space"),
                    "--work-path", str(tmp_path / "images with space.work"), "abc"]
    assert (tmp_path / "images with space.work").is_dir()  # CRIU's restore log and statistics go there


def test_marker_naming_a_missing_directory_fails_clearly(tmp_path):
    (tmp_path / "cp").mkdir()
    (tmp_path / "cp" / "edge-migrate-images").write_text("/nonexistent/images")
    rc, argv, err = argv_seen_by_runc(tmp_path, "restore", "--image-path", str(tmp_path / "cp"), "abc")
    assert rc != 0 and argv == [] and "/nonexistent/images" in err


def criu_config_seen_by_runc(tmp_path, *args):
    printer = tmp_path / "print-env"
    printer.write_text('#!/bin/sh\necho "${CRIU_CONFIG_FILE:-none}"\n')
    printer.chmod(0o755)
    proc = subprocess.run([WRAPPER, *args], capture_output=True, text=True,
                          env={"EDGE_MIGRATE_RUNC": str(printer), "PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_restore_options_of_the_checkpoint_reach_criu(tmp_path):
    (tmp_path / "cp").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "cp" / "edge-migrate-images").write_text(str(tmp_path / "images"))
    (tmp_path / "cp" / "edge-migrate-criu.conf").write_text("mntns-compat-mode\n")
    seen = criu_config_seen_by_runc(tmp_path, "restore", "--image-path", str(tmp_path / "cp"), "abc")
    assert seen == str(tmp_path / "cp" / "edge-migrate-criu.conf")
    # A whole checkpoint (no marker) carries them the same way; other commands never do.
    (tmp_path / "cp" / "edge-migrate-images").unlink()
    assert criu_config_seen_by_runc(tmp_path, "restore", "--image-path", str(tmp_path / "cp"), "abc") == seen
    assert criu_config_seen_by_runc(tmp_path, "checkpoint", "--image-path", str(tmp_path / "images"), "abc") == "none"


def test_file_locks_of_the_checkpoint_become_runcs_flag(tmp_path):
    (tmp_path / "cp").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "cp" / "edge-migrate-images").write_text(str(tmp_path / "images"))
    (tmp_path / "cp" / "edge-migrate-criu.conf").write_text("mntns-compat-mode\nfile-locks\n")
    rc, argv, _ = argv_seen_by_runc(tmp_path, "--root", "/r", "restore", "--image-path", str(tmp_path / "cp"),
                                    "--work-path", "/w", "restore")
    assert rc == 0
    assert argv == ["--root", "/r", "restore", "--file-locks", "--image-path", str(tmp_path / "images"),
                    "--work-path", str(tmp_path / "images.work"), "restore"]


def test_lazy_pages_start_the_daemon_on_the_images_and_record_its_exit(tmp_path):
    (tmp_path / "cp").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "cp" / "edge-migrate-images").write_text(str(tmp_path / "images"))
    (tmp_path / "cp" / "edge-migrate-criu.conf").write_text("lazy-pages\n")
    # Stands in for `criu lazy-pages`: binds the socket the restore connects to, notes its
    # arguments and whether the restore's configuration file reached it, and fails.
    daemon = tmp_path / "lazy-daemon"
    daemon.write_text('#!/bin/sh\necho "$@ ${CRIU_CONFIG_FILE:-no-config}" > "%s/daemon-args"\n'
                      'python3 -c "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" '
                      '"$5/lazy-pages.socket"\nexit 3\n' % tmp_path)
    daemon.chmod(0o755)
    printer = tmp_path / "print-args"
    printer.write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    printer.chmod(0o755)
    proc = subprocess.run([WRAPPER, "--root", "/r", "restore", "--image-path", str(tmp_path / "cp"),
                           "--work-path", "/w", "abc"], capture_output=True, text=True,
                          env={"EDGE_MIGRATE_RUNC": str(printer), "EDGE_MIGRATE_CRIU": str(daemon),
                               "PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr
    work = tmp_path / "images.work"
    assert proc.stdout.splitlines() == ["--root", "/r", "restore", "--lazy-pages", "--image-path",
                                        str(tmp_path / "images"), "--work-path", str(work), "abc"]
    for _ in range(500):
        if (work / "lazy-pages.rc").exists():
            break
        time.sleep(0.01)
    assert (work / "lazy-pages.rc").read_text().strip() == "3"
    assert (tmp_path / "daemon-args").read_text().split() == [
        "lazy-pages", "--images-dir", str(tmp_path / "images"), "--work-dir", str(work), "-o", "lazy-pages.log",
        "-v2", "no-config"]


def test_lazy_pages_without_the_marker_are_not_asked_for(tmp_path):
    (tmp_path / "cp").mkdir()
    (tmp_path / "cp" / "edge-migrate-criu.conf").write_text("file-locks\nlazy-pages\n")
    rc, argv, _ = argv_seen_by_runc(tmp_path, "restore", "--image-path", str(tmp_path / "cp"), "--work-path",
                                    "/w", "abc")
    assert rc == 0 and "--lazy-pages" not in argv and "--file-locks" in argv


def test_a_lazy_pages_daemon_that_does_not_start_fails_the_restore(tmp_path):
    (tmp_path / "cp").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "cp" / "edge-migrate-images").write_text(str(tmp_path / "images"))
    (tmp_path / "cp" / "edge-migrate-criu.conf").write_text("lazy-pages\n")
    proc = subprocess.run([WRAPPER, "restore", "--image-path", str(tmp_path / "cp"), "abc"],
                          capture_output=True, text=True,
                          env={"EDGE_MIGRATE_RUNC": "/bin/true", "EDGE_MIGRATE_CRIU": "/bin/false",
                               "PATH": os.environ["PATH"]})
    assert proc.returncode != 0 and "lazy-pages daemon did not start" in proc.stderr


def test_criu_works_in_the_directory_named_beside_the_marker(tmp_path):
    (tmp_path / "cp").mkdir()
    (tmp_path / "images").mkdir()
    (tmp_path / "private").mkdir(mode=0o700)
    (tmp_path / "cp" / "edge-migrate-images").write_text(str(tmp_path / "images"))
    (tmp_path / "cp" / "edge-migrate-work").write_text(str(tmp_path / "private"))
    rc, argv, _ = argv_seen_by_runc(tmp_path, "restore", "--image-path", str(tmp_path / "cp"), "--work-path", "/w",
                                    "abc")
    assert rc == 0
    assert argv == ["restore", "--image-path", str(tmp_path / "images"), "--work-path", str(tmp_path / "private"),
                    "abc"]
    assert not (tmp_path / "images.work").exists()
