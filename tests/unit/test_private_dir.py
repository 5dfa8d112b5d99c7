"""Files a host writes by name where other edges may write too (a migration's directory)."""

import os
import threading

from ansible.module_utils.edge_private_dir import write_own_file


def test_a_planted_symlink_is_replaced_not_written_through(tmp_path):
    canary = tmp_path / "canary"
    canary.write_text("intact\n")
    os.symlink(canary, tmp_path / "restart_policy.json")
    write_own_file(str(tmp_path / "restart_policy.json"), '{"Name": "always"}')
    assert canary.read_text() == "intact\n"
    assert not os.path.islink(tmp_path / "restart_policy.json")
    assert (tmp_path / "restart_policy.json").read_text() == '{"Name": "always"}'
    assert os.stat(tmp_path / "restart_policy.json").st_mode & 0o777 == 0o600


def test_a_planted_fifo_does_not_block_the_writer(tmp_path):
    os.mkfifo(tmp_path / "listing")
    done = threading.Event()
    writer = threading.Thread(target=lambda: (write_own_file(str(tmp_path / "listing"), "[]"), done.set()),
                              daemon=True)
    writer.start()
    assert done.wait(5), "the open of a planted fifo blocked"
    assert (tmp_path / "listing").read_text() == "[]"
