"""The destination's wait for the source's signal (library/edge_restore.py wait_for_source)."""

import threading
import time

import pytest
from ansible.module_utils.edge_errors import EdgeError
from module_runner import load_module


def params(tmp_path, timeout=5.0):
    return {"wait_for_file": str(tmp_path / "work/sent"), "abort_file": str(tmp_path / "work/called-off"),
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


def test_gives_up_when_called_off(tmp_path, waiter):
    later(lambda: (tmp_path / "work/called-off").touch())
    with pytest.raises(EdgeError, match="called off"):
        waiter(params(tmp_path), {})


def test_gives_up_when_its_directory_is_removed(tmp_path, waiter):
    later(lambda: (tmp_path / "work").rmdir())
    with pytest.raises(EdgeError, match="was removed"):
        waiter(params(tmp_path), {})


def test_gives_up_after_its_timeout(tmp_path, waiter):
    with pytest.raises(EdgeError, match="did not finish sending within 0.3"):
        waiter(params(tmp_path, timeout=0.3), {})
