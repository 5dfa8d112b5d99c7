"""The forced command of the edges' keys (roles/edge_ssh_trust/files/edge_migrate_ssh.py):
what it lets through, what it refuses, and real rsync pushes through it (a stand-in for ssh
hands rsync's remote command to it as sshd does, in SSH_ORIGINAL_COMMAND)."""

import importlib.util
import json
import os
import shlex
import subprocess
import sys

import pytest
from ansible.module_utils.edge_fs import TREE_FLAGS
from ansible.module_utils.edge_progress import RSYNC_PROGRESS_ARGS
from ansible.module_utils.edge_transfer import (
    CPUINFO_CHECK,
    ITEMIZE_ARGS,
    OVER_AN_OLDER_COPY,
    REFUSED,
    REMOVE,
    TransferError,
    parse_stats,
    push,
    remote_command,
    rsync_command,
)
from module_runner import ROOT

COMMAND = os.path.join(ROOT, "roles", "edge_ssh_trust", "files", "edge_migrate_ssh.py")
spec = importlib.util.spec_from_file_location("edge_migrate_ssh", COMMAND)
forced = importlib.util.module_from_spec(spec)
spec.loader.exec_module(forced)

SERVER = "--server -logDtpre.iLsfxCIvu --timeout=60 --delete --stats"


@pytest.fixture
def edge(tmp_path):
    """An edge's roots: a workdir and a data root's overlay2 and volumes, and its config."""
    work, data = tmp_path / "work", tmp_path / "docker"
    for path in (work, data / "overlay2" / "abc" / "diff", data / "volumes" / "v" / "_data", tmp_path / "etc"):
        path.mkdir(parents=True)
    config = tmp_path / "edge-migrate-ssh.json"
    config.write_text(json.dumps({"workdir_roots": [str(work)],
                                  "receive_roots": [str(data / "overlay2"), str(data / "volumes")]}))
    os.chmod(config, 0o644)
    return tmp_path


def parse(edge, command):
    return forced.parse(command, forced.load_config(str(edge / "edge-migrate-ssh.json")))


def refused(edge, command):
    with pytest.raises(forced.Refused) as failure:
        parse(edge, command)
    return str(failure.value)


def test_rsync_receives_below_the_workdir_and_the_engine_roots(edge):
    action = parse(edge, "rsync %s . %s/work/m1/base/" % (SERVER, edge))
    assert action["verb"] == "receive" and action["dest"] == (str(edge / "work"), ["m1", "base"])
    assert "--sender" not in action["rsync"] and action["mkdir"] is None
    action = parse(edge, "edge-migrate-receive --mkdir %s/work/m1/delta --done %s/work/m1/sent %s . %s/work/m1/delta/"
                   % (edge, edge, SERVER, edge))
    assert action["mkdir"] == (str(edge / "work"), ["m1", "delta"]) and action["done"] == (str(edge / "work"),
                                                                                            ["m1", "sent"])
    layer = parse(edge, "edge-migrate-receive --server -lHogDtpAXre.iLsfxCIvu -@-1 --numeric-ids . "
                  "%s/docker/overlay2/abc/diff/" % edge)
    assert layer["dest"] == (str(edge / "docker" / "overlay2"), ["abc", "diff"])
    # what rsync sends for --ignore-times (memory images over an older copy)
    assert parse(edge, "rsync --server -logDtprIe.iLsfxCIvu . %s/work/m1/" % edge)["rsync"] == ["-logDtprIe.iLsfxCIvu"]
    assert parse(edge, "rsync --server -logDtpre.iLsfxCIvu -B131072 --compress-choice=zstd . %s/docker/volumes/v/_data"
                 % edge)["dest"][1] == ["v", "_data"]
    # what rsync 3.2+ sends for each --compress-choice (zlib: -z and --old-compress)
    for options in ("-logDtprze.iLsfxCIvu --old-compress", "-logDtpre.iLsfxCIvu --new-compress",
                    "-logDtpre.iLsfxCIvu --compress-level=3 --compress-choice=lz4", "-logDtprze.iLsfxCIvu"):
        assert parse(edge, "rsync --server %s . %s/work/m1/" % (options, edge))["rsync"] == options.split()


@pytest.mark.parametrize("command", [None, "", "id", "cat /etc/shadow", "sh -c id", "bash", "scp -t /tmp",
                                     "internal-sftp", "/usr/bin/rsync --server -logDtpre.iLsfxCIvu . /x",
                                     "rsync --daemon", "criu cpuinfo check -D /tmp", "rm -rf /",
                                     "edge-migrate-receive id", "rsync 'unterminated"])
def test_anything_else_is_refused(edge, command):
    assert refused(edge, command)


@pytest.mark.parametrize("dest", ["/etc/", "{e}/etc", "{e}/work", "{e}/work/", "{e}/work/../etc",
                                  "{e}/work/m1/../../etc", "{e}/docker/containers/abc", "{e}/docker",
                                  "{e}/docker/overlay2", "work/m1", "{e}/work/./m1", "{e}/workx/m1", "/"])
def test_rsync_into_anything_but_a_directory_below_a_root_is_refused(edge, dest):
    assert refused(edge, "rsync %s . %s" % (SERVER, dest.format(e=edge)))


@pytest.mark.parametrize("options", [
    "--sender -logDtpre.iLsfxCIvu", "-logDtpre.iLsfxCIvu --log-file=/etc/cron.d/x",
    "-logDtpre.iLsfxCIvu --rsync-path=sh", "-logDtpre.iLsfxCIvu --remove-source-files",
    "-logDtpre.iLsfxCIvu -e sh", "-logDtpre", "-logDtpre.i;id", "-logDtpbre.iLsfxCIvu",
    "-logDtpre.iLsfxCIvu --backup-dir=/etc", "-logDtpre.iLsfxCIvu --partial-dir=/etc",
    "-logDtpre.iLsfxCIvu --temp-dir=/etc", "-logDtpre.iLsfxCIvu --link-dest=/etc",
    "-logDtpre.iLsfxCIvu --copy-dest=/", "-logDtpre.iLsfxCIvu --compare-dest=/etc",
    "-slogDtpre.iLsfxCIvu", "-logDtpre.iLsfxCIvu --protect-args", "-KlogDtpre.iLsfxCIvu",
    "-logDtpre.iLsfxCIvu --files-from=/etc/shadow", "-logDtpre.iLsfxCIvu --timeout=x", "-logDtpre.iLsfxCIvu -Bx",
    "-logDtpre.iLsfxCIvu --timeout", "-logDtpre.iLsfxCIvu --delete=1", "-logDtpre.iLsfxCIvu --server",
    "-logDtpre.iLsfxCIvu --config=/etc/x", "-logDtpre.iLsfxCIvu -T /etc", "-logDtpre.iLsfxCIvu x",
    "-logDtpre.iLsfxCIvu --log-format=%n", "-logDtpre.iLsfxCIvu --log-format=%i%f",
    "-logDtpre.iLsfxCIvu -@", "-logDtpre.iLsfxCIvu -@1x", "-logDtpre.iLsfxCIvu -@-1;id", "-logDtpre.iLsfxCIvu -@5",
])
def test_rsync_options_outside_the_allow_list_are_refused(edge, options):
    assert refused(edge, "rsync --server %s . %s/work/m1/" % (options, edge))


def test_rsync_needs_exactly_one_destination(edge):
    assert "exactly one" in refused(edge, "rsync %s . %s/work/a %s/work/b" % (SERVER, edge, edge))
    assert "unexpected rsync argument" in refused(edge, "rsync %s %s/work/a" % (SERVER, edge))
    assert "--server first" in refused(edge, "rsync -logDtpre.iLsfxCIvu --server . %s/work/a" % edge)


def test_mkdir_below_the_roots_and_the_marker_below_the_workdir_only(edge):
    assert "not below" in refused(edge, "edge-migrate-receive --mkdir /etc/x %s . %s/work/a" % (SERVER, edge))
    assert "not below" in refused(edge, "edge-migrate-receive --done %s/docker/overlay2/abc/x %s . %s/work/a"
                                  % (edge, SERVER, edge))
    assert "needs a path" in refused(edge, "edge-migrate-receive --done")


def test_fixed_verbs_take_one_directory_below_the_workdir(edge):
    assert parse(edge, remote_command(CPUINFO_CHECK, "%s/work/m1.preflight" % edge)) == {
        "verb": "cpuinfo", "dir": (str(edge / "work"), ["m1.preflight"])}
    assert parse(edge, remote_command(REMOVE, "%s/work/estimate-probe-1" % edge))["verb"] == "remove"
    for path in ("/", "/etc", str(edge / "work"), str(edge / "work/../etc"), str(edge / "docker/overlay2/abc")):
        assert refused(edge, remote_command(REMOVE, path))
    assert refused(edge, "%s %s/work/a %s/work/b" % (REMOVE, edge, edge))


def test_a_config_others_can_write_is_not_trusted(edge):
    if os.geteuid() != 0:
        pytest.skip("the ownership check applies when the command runs as root")
    os.chmod(edge / "edge-migrate-ssh.json", 0o666)
    with pytest.raises(forced.Refused, match="writable by root only"):
        forced.load_config(str(edge / "edge-migrate-ssh.json"))


def test_a_symlink_received_earlier_leads_nowhere(edge):
    (edge / "work" / "m1").mkdir()
    os.symlink(str(edge / "etc"), edge / "work" / "m1" / "link")
    for dest in ("%s/work/m1/link/x" % edge, "%s/work/m1/link/x/" % edge, "%s/work/m1/link" % edge):
        action = parse(edge, "rsync %s . %s" % (SERVER, dest))
        with pytest.raises(forced.Refused, match="symlink"):
            forced.receive_target(*action["dest"], action["into_dir"])
    with pytest.raises(forced.Refused, match="symlink"):
        forced.touch_below(str(edge / "work"), ["m1", "link", "sent"])
    forced.remove_below(str(edge / "work"), ["m1", "link"])  # removes the link itself, not its target
    assert (edge / "etc").is_dir() and not os.path.lexists(edge / "work" / "m1" / "link")


def via_forced_command(edge, tmp_path, argv):
    """Run an rsync argv from rsync_command with a stand-in for ssh that hands the remote
    command to the forced command as sshd would."""
    fake_ssh = tmp_path / "fake-ssh"
    fake_ssh.write_text('#!/bin/sh\nwhile [ "$1" != h ]; do shift; done\nshift\n'
                        'SSH_ORIGINAL_COMMAND="$*" exec %s %s %s\n'
                        % (sys.executable, COMMAND, edge / "edge-migrate-ssh.json"))
    fake_ssh.chmod(0o755)
    argv = list(argv)
    argv[argv.index("-e") + 1] = str(fake_ssh)
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def test_a_push_goes_through_the_forced_command_and_leaves_its_marker(edge, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "pages-1.img").write_bytes(os.urandom(100000))
    dest, marker = edge / "work" / "m 1" / "delta", edge / "work" / "m 1" / "sent"
    proc = via_forced_command(edge, tmp_path, rsync_command(str(src), "h", str(dest), done_marker=str(marker)))
    assert proc.returncode == 0, proc.stderr
    assert (dest / "pages-1.img").read_bytes() == (src / "pages-1.img").read_bytes()
    assert marker.exists() and os.stat(dest.parent).st_mode & 0o777 == 0o700


def test_a_push_with_its_changes_and_progress_goes_through_and_says_what_changed(edge, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "pages-1.img").write_bytes(os.urandom(100000))
    dest = edge / "work" / "m2" / "base"
    argv = rsync_command(str(src), "h", str(dest), extra_args=ITEMIZE_ARGS + RSYNC_PROGRESS_ARGS)
    for changed in (2, 0):  # the directory and the file, then nothing
        proc = via_forced_command(edge, tmp_path, argv)
        assert proc.returncode == 0, proc.stderr
        assert parse_stats(proc.stdout.replace("\r", "\n"))["items_changed"] == changed, proc.stdout


def test_a_push_outside_the_roots_fails_and_writes_nothing(edge, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "x").write_text("* * * * * root id\n")
    proc = via_forced_command(edge, tmp_path, rsync_command(str(src), "h", str(edge / "etc" / "cron.d")))
    assert proc.returncode != 0 and "refused" in proc.stderr
    assert not os.path.exists(edge / "etc" / "cron.d")
    with pytest.raises(TransferError, match="edge-migrate-ssh: refused: mkdir .* is not below"):
        push(lambda argv: (lambda p: (p.returncode, p.stdout, p.stderr))(via_forced_command(edge, tmp_path, argv)),
             str(src), "h", str(edge / "etc" / "cron.d"))


def test_a_single_file_push_keeps_rsync_semantics(edge, tmp_path):
    (tmp_path / "blob").write_bytes(os.urandom(5000))
    argv = ["rsync", "-a", "-e", "ssh", str(tmp_path / "blob"), "root@h:%s" % (edge / "work" / "blob-copy")]
    proc = via_forced_command(edge, tmp_path, argv)
    assert proc.returncode == 0, proc.stderr
    assert (edge / "work" / "blob-copy").read_bytes() == (tmp_path / "blob").read_bytes()
    proc = via_forced_command(edge, tmp_path, argv)  # over an existing file
    assert proc.returncode == 0, proc.stderr


def test_refusals_exit_non_zero_with_a_message(edge):
    proc = subprocess.run([sys.executable, COMMAND, str(edge / "edge-migrate-ssh.json")], capture_output=True,
                          text=True, env={"SSH_ORIGINAL_COMMAND": "cat /etc/shadow", "PATH": os.environ["PATH"]})
    assert proc.returncode != 0 and proc.stdout == ""
    assert "edge-migrate-ssh: refused: cat is not one of edge-migrate's transfers" in proc.stderr
    assert REFUSED in proc.stderr  # what edge_peer_check looks for
    proc = subprocess.run([sys.executable, COMMAND, str(edge / "edge-migrate-ssh.json")], capture_output=True,
                          text=True, env={"PATH": os.environ["PATH"]})
    assert proc.returncode != 0 and "not a shell" in proc.stderr


def test_remove_verb_removes_a_directory_below_the_workdir(edge):
    (edge / "work" / "probe" / "x").mkdir(parents=True)
    env = {"SSH_ORIGINAL_COMMAND": remote_command(REMOVE, str(edge / "work" / "probe")), "PATH": os.environ["PATH"]}
    proc = subprocess.run([sys.executable, COMMAND, str(edge / "edge-migrate-ssh.json")], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert not (edge / "work" / "probe").exists() and (edge / "work").is_dir()
    proc = subprocess.run([sys.executable, COMMAND, str(edge / "edge-migrate-ssh.json")], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr  # like rm -rf: nothing there is no error


def test_rsync_path_carries_no_shell_text():
    argv = rsync_command("/w/d", "h", "/x y/d", done_marker="/x y/sent")
    remote = [a for a in argv if a.startswith("--rsync-path=")][0][len("--rsync-path="):]
    assert shlex.split(remote) == ["edge-migrate-receive", "--mkdir", "/x y/d", "--done", "/x y/sent"]
    assert not set("&|;$`(){}") & set(remote)


@pytest.mark.parametrize("extra_args", [TREE_FLAGS, OVER_AN_OLDER_COPY], ids=["tree", "memory images"])
def test_a_rewrite_of_the_same_size_in_the_same_second_is_sent(edge, tmp_path, extra_args):
    """rsync's quick check sees size and whole seconds only: a file rewritten with the same size
    within the second of its earlier copy would stay old on the destination without these flags."""
    src = tmp_path / "src"
    src.mkdir()
    page = src / "pages-1.img"
    page.write_bytes(b"a" * 8192)
    os.utime(page, ns=(1_700_000_000_100_000_000, 1_700_000_000_100_000_000))
    dest = edge / "work" / "m3" / "base"
    argv = rsync_command(str(src), "h", str(dest), extra_args=extra_args, whole_file=False)
    assert via_forced_command(edge, tmp_path, argv).returncode == 0
    page.write_bytes(b"b" * 8192)
    os.utime(page, ns=(1_700_000_000_900_000_000, 1_700_000_000_900_000_000))
    proc = via_forced_command(edge, tmp_path, argv)
    assert proc.returncode == 0, proc.stderr
    assert (dest / "pages-1.img").read_bytes() == b"b" * 8192

