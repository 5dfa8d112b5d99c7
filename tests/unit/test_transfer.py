import os

from ansible.module_utils.edge_transfer import parse_stats, rsync_command, ssh_command

RSYNC_STATS = """
Number of files: 12 (reg: 11, dir: 1)
Number of regular files transferred: 11
Total file size: 199,507,968 bytes
Literal data: 1,234,567 bytes
Total bytes sent: 199,582,121
Total bytes received: 229
"""


def test_ssh_is_non_interactive_and_checks_host_keys():
    ssh = ssh_command("/k/id", "/k/known_hosts", 2222)
    assert "BatchMode=yes" in ssh and "StrictHostKeyChecking=yes" in ssh
    assert "StrictHostKeyChecking=no" not in ssh
    assert "UserKnownHostsFile=/k/known_hosts" in ssh and "-i /k/id" in ssh and "-p 2222" in ssh
    assert "ConnectTimeout=" in ssh


def test_rsync_pushes_to_destination_with_timeout_and_private_dir():
    argv = rsync_command("/w/base/", "10.0.0.2", "/w/m1/base", timeout=30, whole_file=True)
    assert argv[0] == "rsync" and "--timeout=30" in argv and "--whole-file" in argv
    assert argv[-2:] == ["/w/base/", "root@10.0.0.2:/w/m1/base/"]
    # the destination's forced command makes the directory (0700): a verb and a path, no shell
    assert "--rsync-path=edge-migrate-receive --mkdir /w/m1/base" in argv


def test_rsync_delta_mode_and_compression():
    argv = rsync_command("/w/final", "h", "/d", whole_file=False, compress=True)
    assert "--no-whole-file" in argv and "--inplace" in argv
    assert "--compress-choice=zstd" in argv
    assert "--inplace" not in rsync_command("/w/final", "h", "/d", whole_file=False, inplace=False)


def test_parse_stats():
    stats = parse_stats(RSYNC_STATS)
    assert stats["bytes_sent"] == 199582121
    assert stats["bytes_received"] == 229
    assert stats["files_transferred"] == 11
    assert stats["total_file_size"] == 199507968
    assert stats["literal_data"] == 1234567
    assert parse_stats("")["bytes_sent"] == 0


def test_ssh_shares_one_connection_whose_socket_lies_in_a_private_directory(tmp_path, monkeypatch):
    """The control path names the connection (the migration's directory, where other edges may
    write); the socket is in a directory of this user's, 0700, one per name."""
    from ansible.module_utils import edge_transfer
    monkeypatch.setattr(edge_transfer, "control_dir", lambda: str(tmp_path / "ssh-sockets"))
    ssh = ssh_command("/k/id", control_path="/w/m1/ssh")
    socket = edge_transfer.control_socket("/w/m1/ssh")
    assert os.path.dirname(socket) == str(tmp_path / "ssh-sockets")
    assert "ControlMaster=auto" in ssh and "ControlPath=%s" % socket in ssh and "ControlPersist=" in ssh
    assert "/w/m1" not in ssh
    assert os.stat(tmp_path / "ssh-sockets").st_mode & 0o777 == 0o700
    assert edge_transfer.control_socket("/w/m2/ssh") != socket
    assert edge_transfer.control_socket("/" + "x" * 120) is not None
    assert "ControlMaster" not in ssh_command("/k/id")


def test_no_shared_connection_where_its_directory_is_not_private(tmp_path, monkeypatch):
    from ansible.module_utils import edge_transfer
    open_dir, elsewhere = tmp_path / "open", tmp_path / "elsewhere"
    open_dir.mkdir(mode=0o777)
    os.chmod(open_dir, 0o777)
    elsewhere.mkdir(mode=0o700)
    os.symlink(elsewhere, tmp_path / "planted")
    for directory in (open_dir, tmp_path / "planted", tmp_path / ("long" * 30)):
        monkeypatch.setattr(edge_transfer, "control_dir", lambda d=directory: str(d))
        assert edge_transfer.control_socket("/w/m1/ssh") is None
        assert "ControlMaster" not in ssh_command("/k/id", control_path="/w/m1/ssh")


def test_compressed_ratio_tells_compressible_images_from_random_ones(tmp_path):
    from ansible.module_utils.edge_transfer import compressed_ratio
    (tmp_path / "heap").mkdir()
    (tmp_path / "heap/pages-1.img").write_bytes(b"\0" * (4 << 20) + b"python heap " * 100000)
    (tmp_path / "heap/core-1.img").write_bytes(os.urandom(1000))  # small: not the one sampled
    (tmp_path / "random").mkdir()
    (tmp_path / "random/pages-1.img").write_bytes(os.urandom(4 << 20))
    assert compressed_ratio(str(tmp_path / "heap")) < 0.1
    assert compressed_ratio(str(tmp_path / "random")) > 0.95
    assert compressed_ratio(str(tmp_path / "nothing")) == 1.0


def test_changed_is_what_rsync_itemized(tmp_path):
    """A real rsync: the first copy creates and sends, the second finds nothing to do, a
    deletion or a new mode counts again."""
    import subprocess

    from ansible.module_utils.edge_transfer import ITEMIZE_ARGS
    src, dst = tmp_path / "src", tmp_path / "dst"
    (src / "sub").mkdir(parents=True)
    (src / "pages-1.img").write_bytes(os.urandom(100000))
    (src / "sub" / "core.img").write_bytes(b"x")

    def sync():
        out = subprocess.run(["rsync", "-a", "--delete", "--stats", *ITEMIZE_ARGS, "--info=progress2",
                              str(src) + "/", str(dst) + "/"], capture_output=True, text=True, check=True).stdout
        return parse_stats(out.replace("\r", "\n"))["items_changed"]

    assert sync() == 4  # ./, pages-1.img, sub/, sub/core.img
    assert sync() == 0
    (src / "sub" / "core.img").unlink()
    assert sync() >= 1  # the deletion
    os.chmod(src / "pages-1.img", 0o600)
    assert sync() == 1


def test_a_shared_connection_is_ended_by_its_socket_and_none_is_left_alone(tmp_path, monkeypatch):
    from ansible.module_utils import edge_transfer
    from ansible.module_utils.edge_transfer import close_shared_connection
    monkeypatch.setattr(edge_transfer, "control_dir", lambda: str(tmp_path / "ssh-sockets"))
    calls = []

    def run(argv):
        calls.append(argv)
        return 0, "", ""

    name = "/w/m1/ssh"
    assert close_shared_connection(run, "10.0.0.2", control_path=name) == 0 and calls == []
    socket = edge_transfer.control_socket(name)
    open(socket, "w").close()  # where ssh's master listens
    close_shared_connection(run, "10.0.0.2", dest_user="root", ssh_key="/k/id", control_path=name)
    argv = calls[0]
    assert argv[0] == "ssh" and argv[-3:] == ["-O", "exit", "root@10.0.0.2"]
    assert "ControlPath=%s" % socket in argv and "/k/id" in argv
    assert close_shared_connection(run, "10.0.0.2", control_path=None) == 0 and len(calls) == 1


def test_a_push_job_runs_detached_and_writes_its_end_where_a_background_jobs_is_read(tmp_path, capfd):
    """A real rsync over ssh to a port nobody listens on: the job starts, the caller gets its
    pid at once and prints nothing, and the status file ends with rsync's failure."""
    import json
    import time

    from ansible.module_utils.edge_async_job import wait_for_result
    from ansible.module_utils.edge_push_job import start_push_job
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "core-1.img").write_bytes(b"x")
    status = str(tmp_path / "push.status")
    params = {"dest_host": "127.0.0.1", "dest_dir": "/nowhere", "dest_user": "root", "ssh_key": None,
              "known_hosts": str(tmp_path / "known_hosts"), "ssh_port": 1, "timeout": 5, "compress": False,
              "compress_choice": "zstd", "ssh_control_path": None,
              "whole_file": True, "compress_auto": False, "compress_threshold": 0.8, "progress_file": None}
    begin = time.monotonic()
    pid = start_push_job(status, str(tmp_path / "base"), params)
    assert time.monotonic() - begin < 1 and pid != os.getpid()
    assert oct(os.stat(status).st_mode & 0o777) == "0o600"
    job = wait_for_result(status, 30)
    assert job and job["failed"] and job["finished"] == 1 and "rsync" in job["cmd"], job
    assert json.load(open(status)) == job
    assert capfd.readouterr() == ("", "")


def test_a_push_job_past_its_time_limit_is_ended_and_says_so(tmp_path):
    """An SSH server that never answers (a socket that is listened on, never accepted): the
    job's own time limit ends it, as async_wrapper's ended a background job."""
    from ansible.module_utils.edge_async_job import wait_for_result
    from ansible.module_utils.edge_push_job import start_push_job
    silent, params = silent_ssh_server(tmp_path)
    try:
        start_push_job(str(tmp_path / "push.status"), str(tmp_path / "base"), params, time_limit=1)
        job = wait_for_result(str(tmp_path / "push.status"), 20)
    finally:
        silent.close()
    assert job and job["failed"] and "took more than 1 s" in job["msg"], job


def test_a_push_job_that_still_runs_is_ended_by_its_pid_with_what_it_started(tmp_path):
    """An SSH server that never answers keeps the job and its ssh waiting: stop_push_job ends
    the job's whole session (no ssh left behind), marks its status file failed, and a second
    stop, or a stop of a job that ended, ends nothing."""
    import json
    import time

    from ansible.module_utils.edge_push_job import start_push_job, stop_push_job
    status = str(tmp_path / "push.status")
    silent, params = silent_ssh_server(tmp_path)
    try:
        pid = start_push_job(status, str(tmp_path / "base"), params)
        started = json.load(open(status))
        assert started["pid"] == pid
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not session_members(started["session"]) - {pid}:
            time.sleep(0.05)
        assert session_members(started["session"]) - {pid}, "the job started no rsync"
        assert stop_push_job(status) is True
        assert session_members(started["session"]) == set()
        ended = json.load(open(status))
        assert ended["failed"] and ended["finished"] == 1 and ended["stopped"], ended
        assert stop_push_job(status) is False
    finally:
        silent.close()
    assert stop_push_job(str(tmp_path / "missing.status")) is False


def session_members(sid):
    """The pids of the live (not zombie) processes of session `sid`."""
    members = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z" and int(fields[3]) == sid:
                members.add(int(entry))
    return members


def silent_ssh_server(tmp_path):
    """A socket listened on and never accepted (an SSH server that never answers), and push
    parameters aimed at it; a checkpoint directory `base` with one file in tmp_path."""
    import socket
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "core-1.img").write_bytes(b"x")
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    params = {"dest_host": "127.0.0.1", "dest_dir": "/nowhere", "dest_user": "root", "ssh_key": None,
              "known_hosts": str(tmp_path / "known_hosts"), "ssh_port": silent.getsockname()[1], "timeout": 60,
              "compress": False, "compress_choice": "zstd", "ssh_control_path": None,
              "whole_file": True, "compress_auto": False, "compress_threshold": 0.8, "progress_file": None}
    return silent, params
