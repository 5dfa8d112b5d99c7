"""The destination's wait for the source's signal (library/edge_restore.py wait_for_source)
and the claim that settles a race between that restore and a rollback calling it off
(module_utils/edge_claim.py, library/edge_call_off.py)."""

import os
import subprocess
import sys
import threading
import time

import pytest
from ansible.module_utils import edge_claim as claim
from ansible.module_utils.edge_errors import EdgeError
from module_runner import load_module


def params(tmp_path, timeout=5.0):
    return {"wait_for_file": str(tmp_path / "work/sent"), "claim_file": str(tmp_path / "work/claim"),
            "wait_for_timeout": timeout}


@pytest.fixture
def waiter(tmp_path):
    (tmp_path / "work").mkdir()
    return load_module("edge_restore").wait_for_source


def later(action, delay=0.2):
    thread = threading.Thread(target=lambda: (time.sleep(delay), action()))
    thread.start()
    return thread


def test_returns_once_the_source_signals(tmp_path, waiter):
    result = {}
    later(lambda: (tmp_path / "work/sent").touch())
    began = time.monotonic()
    waiter(params(tmp_path), result)
    assert 0.15 < time.monotonic() - began < 2 and result["signalled_at"] > 0
    assert result["claimed"] and claim.read(str(tmp_path / "work/claim")) == (claim.RESTORING, os.getpid())


def test_gives_up_when_called_off(tmp_path, waiter):
    later(lambda: claim.claim(str(tmp_path / "work/claim"), claim.CALLED_OFF))
    with pytest.raises(EdgeError, match="called off"):
        waiter(params(tmp_path), {})


def test_a_call_off_that_comes_with_the_signal_wins_or_loses_whole(tmp_path, waiter):
    # the signal and the call-off at the same moment: exactly one of them acts
    for attempt in range(20):
        work = tmp_path / ("race%d" % attempt)
        work.mkdir()
        p = {"wait_for_file": str(work / "sent"), "claim_file": str(work / "claim"), "wait_for_timeout": 5.0}
        barrier = threading.Barrier(2)
        seen = {}

        def call_off(p=p, barrier=barrier, seen=seen):
            barrier.wait()
            seen["call_off"] = claim.claim(p["claim_file"], claim.CALLED_OFF)[0]
        thread = threading.Thread(target=call_off)
        thread.start()
        barrier.wait()
        (work / "sent").touch()
        try:
            waiter(p, {})
            restored = True
        except EdgeError:
            restored = False
        thread.join()
        assert restored != seen["call_off"], "both or neither acted"


def test_gives_up_when_its_directory_is_removed(tmp_path, waiter):
    later(lambda: (tmp_path / "work").rmdir())
    with pytest.raises(EdgeError, match="was removed"):
        waiter(params(tmp_path), {})


def test_gives_up_after_its_timeout(tmp_path, waiter):
    with pytest.raises(EdgeError, match="did not finish sending within 0.3"):
        waiter(params(tmp_path, timeout=0.3), {})


@pytest.fixture
def call_off(run_module):
    def call(path, timeout=5.0):
        how, result = run_module("edge_call_off", {"claim_file": str(path), "wait_timeout": timeout})
        assert how == "exit", result
        return result
    return call


def test_call_off_before_the_restore_took_the_signal_up(tmp_path, call_off):
    (tmp_path / "work").mkdir()
    result = call_off(tmp_path / "work/claim")
    assert result["changed"] and result["called_off"] and result["restore"] == "none"
    again = call_off(tmp_path / "work/claim")  # idempotent
    assert not again["changed"] and again["restore"] == claim.CALLED_OFF
    assert oct(os.stat(tmp_path / "work/claim").st_mode & 0o777) == "0o600"


def test_call_off_without_the_migration_directory_does_nothing(tmp_path, call_off):
    result = call_off(tmp_path / "gone/claim")
    assert not result["changed"] and result["restore"] == "none" and not (tmp_path / "gone").exists()


@pytest.mark.parametrize("end", [claim.RESTORED, claim.FAILED])
def test_call_off_waits_for_a_restore_that_came_first(tmp_path, end, call_off):
    (tmp_path / "work").mkdir()
    path = str(tmp_path / "work/claim")
    assert claim.claim(path, claim.RESTORING)[0]
    later(lambda: claim.record(path, end, "start failed" if end == claim.FAILED else ""), delay=0.5)
    began = time.monotonic()
    result = call_off(path)
    assert 0.4 < time.monotonic() - began < 4
    assert not result["changed"] and not result["called_off"] and result["restore"] == end


def test_a_restore_that_died_without_saying_counts_as_failed(tmp_path, call_off):
    (tmp_path / "work").mkdir()
    path = str(tmp_path / "work/claim")
    # a process that claims, then is gone (killed before it could record how the restore ended)
    subprocess.run([sys.executable, "-c", "import os, sys, ansible.module_utils as utils; "
                    "utils.__path__.append(os.path.dirname(sys.argv[1])); "
                    "from ansible.module_utils import edge_claim as c; "
                    "c.claim(sys.argv[2], c.RESTORING)", claim.__file__, path], check=True)
    assert claim.read(path)[0] == claim.RESTORING
    result = call_off(path, timeout=5.0)
    assert result["restore"] == claim.FAILED


def test_call_off_gives_up_waiting_after_its_timeout(tmp_path, call_off):
    (tmp_path / "work").mkdir()
    path = str(tmp_path / "work/claim")
    claim.claim(path, claim.RESTORING)  # this (live) process holds it
    result = call_off(path, timeout=0.3)
    assert result["restore"] == claim.RESTORING
