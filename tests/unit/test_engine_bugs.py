"""Known engine restore bugs are refused before the freeze, naming the version and upstream issue."""

from edge_engines import engine_major, engine_restore_blocker


def test_docker_28_and_newer_cannot_restore_a_container_with_its_own_network_namespace():
    for version in ("28.5.2+dfsg4", "28.0.0", "29.1.0"):
        message = engine_restore_blocker({"version": version}, {"HostConfig": {"NetworkMode": "bridge"}}, "sys2")
        assert message.startswith("sys2 runs Docker %s" % version)
        assert "moby#50750" in message and "containerd#12141" in message
    # the default network, a user network and --network none all have a namespace of their own
    for config in ({}, {"HostConfig": {}}, {"HostConfig": {"NetworkMode": "mynet"}},
                   {"HostConfig": {"NetworkMode": "none"}}):
        assert engine_restore_blocker({"version": "28.5.2"}, config)


def test_older_engines_and_host_network_containers_pass():
    for version in ("20.10.24+dfsg1", "26.1.5+dfsg1", "27.5.1"):
        assert engine_restore_blocker({"version": version}, {"HostConfig": {"NetworkMode": "bridge"}}) == ""
    assert engine_restore_blocker({"version": "28.5.2"}, {"HostConfig": {"NetworkMode": "host"}}) == ""
    assert engine_restore_blocker({}, {}) == ""  # an engine that did not say its version: the trial restore decides


def test_engine_major_reads_debian_and_upstream_versions():
    assert [engine_major(v) for v in ("20.10.24+dfsg1", "28.5.2", "", None, "dev")] == [20, 28, None, None, None]
