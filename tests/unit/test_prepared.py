"""Prepared migration records: written private, read back checked, found by service."""

import json
import os

import pytest
from ansible.module_utils.edge_prepared import RecordError, clean, find, write

RECORD = {"migration_id": "openface-20261201T120000", "service": "openface", "source": "edge1",
          "destination": "edge2", "strategy": "delta", "base_sha256": {"pages-1.img": "ab"}, "compressed": False}


def test_a_record_is_written_private_and_found_with_its_age(tmp_path):
    (tmp_path / RECORD["migration_id"]).mkdir()
    written = write(str(tmp_path), dict(RECORD, src_work=str(tmp_path / RECORD["migration_id"])), ttl=600, now=1000)
    path = tmp_path / RECORD["migration_id"] / "prepared.json"
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert written["expires_at"] == 1600 and written["prepared_at"] == 1000
    [found] = find(str(tmp_path), "openface", now=1100)
    assert found["expired"] is False and found["age_s"] == 100 and found["base_sha256"] == {"pages-1.img": "ab"}
    assert find(str(tmp_path), "openface", now=1700)[0]["expired"] is True
    assert find(str(tmp_path), "other") == []


@pytest.mark.parametrize("change", [
    {"service": "yolo"},                                 # the id names another service
    {"destination": "../../etc"},                        # not a name
    {"src_work": "/etc"},                                # outside the workdir
    {"expires_at": float("nan")},
    {"base_sha256": "not a mapping"},
])
def test_records_that_this_tool_did_not_write_are_refused(tmp_path, change):
    with pytest.raises(RecordError):
        clean(dict(RECORD, **change), str(tmp_path))


def test_unknown_fields_are_dropped_and_a_bad_file_is_reported_not_used(tmp_path):
    assert "command" not in clean(dict(RECORD, command="rm -rf /"), str(tmp_path))
    directory = tmp_path / RECORD["migration_id"]
    directory.mkdir()
    (directory / "prepared.json").write_text(json.dumps(dict(RECORD, src_work="/etc")))
    [found] = find(str(tmp_path), "openface")
    assert "error" in found and "src_work" in found["error"]


def test_a_prepared_migration_is_claimed_once_and_not_when_expired(tmp_path):
    from ansible.module_utils.edge_prepared import claim
    (tmp_path / RECORD["migration_id"]).mkdir()
    write(str(tmp_path), RECORD, ttl=600, now=1000)
    assert claim(str(tmp_path), RECORD["migration_id"], now=1100)["destination"] == "edge2"
    assert find(str(tmp_path), "openface") == []  # claimed: no longer a prepared migration
    with pytest.raises(RecordError, match="not prepared"):
        claim(str(tmp_path), RECORD["migration_id"], now=1100)
    write(str(tmp_path), RECORD, ttl=600, now=1000)
    with pytest.raises(RecordError, match="expired"):
        claim(str(tmp_path), RECORD["migration_id"], now=2000)


def test_the_edges_answer_names_a_prepared_migrations_waiter(tmp_path):
    # A cancel from any controller takes the waiter's end and removes its job's status file.
    from module_runner import load_module
    (tmp_path / RECORD["migration_id"]).mkdir()
    write(str(tmp_path), dict(RECORD, src_work=str(tmp_path / RECORD["migration_id"]), waiter_jid="j123.45"),
          ttl=600)
    [found] = load_module("edge_container_info").leftovers(str(tmp_path), "openface")
    assert found["prepared"]["destination"] == "edge2" and found["prepared"]["waiter_jid"] == "j123.45"
