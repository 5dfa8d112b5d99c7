"""Pieces of the pre-flight and the report that run without root: CRIU's statistics images
(the lock: test_lock.py), and what the info module says of a host without CRIU."""

import struct

import pytest
from ansible.module_utils.edge_criu_stats import parse, read
from criu_images import field


def stats_image(entry):
    return struct.pack("<II", 0x57575757, 0x11111111) + struct.pack("<I", len(entry)) + entry


def test_dump_and_restore_statistics_are_read_in_seconds(tmp_path):
    dump = field(1, 716) + field(2, 326613) + field(3, 190529) + field(4, 92956) + field(5, 55197) + field(7, 55114)
    restore = field(3, 10) + field(4, 449021) + field(5, 55114)
    image = stats_image(field(1, dump) + field(2, restore))
    stats = parse(image)
    assert stats["dump"]["frozen_time"] == pytest.approx(0.326613)
    assert stats["dump"]["pages_written"] == 55114
    assert stats["restore"]["restore_time"] == pytest.approx(0.449021)
    (tmp_path / "stats-dump").write_bytes(image)
    assert read(str(tmp_path), "stats-dump")["dump"]["memdump_time"] == pytest.approx(0.190529)


def test_missing_or_garbage_statistics_give_nothing(tmp_path):
    assert read(str(tmp_path), "stats-restore") == {}
    (tmp_path / "stats-dump").write_bytes(b"not a stats image")
    assert read(str(tmp_path), "stats-dump") == {}


def test_info_reports_a_host_without_criu(run_module, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # no criu, xdelta3 or rsync here
    import module_runner
    info = module_runner.load_module("edge_container_info")
    from ansible.module_utils.basic import AnsibleModule

    class Host(AnsibleModule):
        def __init__(self):  # only what criu_check and tool_versions use
            pass

        def get_bin_path(self, name, *args, **kwargs):
            return None

    assert info.criu_check(Host()) == {"ok": False, "message": "criu is not installed", "lazy_pages": False}
    assert info.tool_versions(Host()) == {"criu": None, "xdelta3": None, "rsync": None}


def test_leftovers_are_found_by_migration_id(tmp_path):
    import module_runner
    info = module_runner.load_module("edge_container_info")
    (tmp_path / "openface-20261125T101500" / "final").mkdir(parents=True)
    (tmp_path / "openface-20261125T101500" / "final" / "descriptors.json").write_text("[]")
    (tmp_path / "openface-20261125T111500" / "base").mkdir(parents=True)
    (tmp_path / "openface-2-20261125T101500").mkdir()  # another container's
    found = info.leftovers(str(tmp_path), "openface")
    assert [(f["migration_id"], f["final_complete"]) for f in found] == [
        ("openface-20261125T101500", True), ("openface-20261125T111500", False)]
