"""The image a container runs, named and moved by its identity (module_utils/edge_image)."""

import hashlib
import io
import json
import os
import tarfile

import pytest
from ansible.module_utils.edge_docker import DockerError
from ansible.module_utils.edge_image import (
    chain_ids,
    digest_candidates,
    drop_layers,
    extract,
    normalize_repository,
    present_prefix,
    reference_kind,
    split_reference,
    tag_of,
    tar_stream,
    tree_bytes,
)

IMAGE_ID = "sha256:6ce992960dc489723c1b9e973ec6cf4752786ec619dce4faeb4766049e2ebc61"
# The lab's busybox image and one `docker commit` on top of it; the chain id of the second
# layer is the directory name dockerd 20.10 gave it in image/overlay2/layerdb/sha256/.
BASE_LAYER = "sha256:3d5c98eed932afdfa54498b3d5ba43613d01698e3a44173e8af4b1a75363dbf3"
COMMIT_LAYER = "sha256:29513c715e3c622c546926e237bec89b76ec66315830cd935546fcb4fa12c5c6"
COMMIT_CHAIN = "sha256:31db9aea5f3920fee7168c47c18e542eb8535dede595f85edcaee30bcca95762"


@pytest.mark.parametrize("name,expected", [
    ("redis", ("redis", None, None)),
    ("redis:7", ("redis", "7", None)),
    ("10.77.0.1:5000/simple", ("10.77.0.1:5000/simple", None, None)),
    ("10.77.0.1:5000/simple:latest", ("10.77.0.1:5000/simple", "latest", None)),
    ("10.77.0.1:5000/simple@sha256:ab", ("10.77.0.1:5000/simple", None, "sha256:ab")),
    ("redis:7@sha256:ab", ("redis", "7", "sha256:ab")),
])
def test_split_reference(name, expected):
    assert split_reference(name) == expected


def test_tag_of_a_name_without_tag_is_latest():
    assert tag_of("10.77.0.1:5000/simple") == ("10.77.0.1:5000/simple", "latest")
    assert tag_of("imgnet-local/committed:v1") == ("imgnet-local/committed", "v1")


@pytest.mark.parametrize("repository,expected", [
    ("redis", "docker.io/library/redis"),
    ("bitnami/redis", "docker.io/bitnami/redis"),
    ("docker.io/redis", "docker.io/library/redis"),
    ("index.docker.io/library/redis", "docker.io/library/redis"),
    ("10.77.0.1:5000/simple", "10.77.0.1:5000/simple"),
    ("localhost/app", "localhost/app"),
    ("ghcr.io/org/app", "ghcr.io/org/app"),
])
def test_normalize_repository(repository, expected):
    assert normalize_repository(repository) == expected


@pytest.mark.parametrize("name,kind", [
    (IMAGE_ID, "id"),
    (IMAGE_ID[7:], "id"),
    ("6ce992960dc4", "id"),
    ("6ce992960dc5", "tag"),  # not this image's id: a repository of that name
    ("deadbeef", "tag"),
    ("redis:7", "tag"),
    ("redis@sha256:" + "a" * 64, "digest"),
])
def test_reference_kind(name, kind):
    assert reference_kind(name, IMAGE_ID) == kind


def test_digest_candidates_try_the_containers_own_repository_first():
    digests = ["10.77.0.1:5000/mirror@sha256:aa", "redis@sha256:bb", "docker.io/library/redis@sha256:cc"]
    assert digest_candidates("redis:7", digests) == [
        "redis@sha256:bb", "docker.io/library/redis@sha256:cc", "10.77.0.1:5000/mirror@sha256:aa"]
    assert digest_candidates("app:1", []) == []
    assert digest_candidates("app:1", None) == []


def test_chain_ids_are_dockers():
    assert chain_ids([]) == []
    assert chain_ids([BASE_LAYER]) == [BASE_LAYER]
    assert chain_ids([BASE_LAYER, COMMIT_LAYER]) == [BASE_LAYER, COMMIT_CHAIN]
    third = "sha256:" + "f" * 64
    assert chain_ids([BASE_LAYER, COMMIT_LAYER, third])[2] == (
        "sha256:" + hashlib.sha256(("%s %s" % (COMMIT_CHAIN, third)).encode()).hexdigest())


def test_present_prefix_counts_only_the_same_stack():
    layers = [BASE_LAYER, COMMIT_LAYER]
    assert present_prefix(layers, set()) == 0
    assert present_prefix(layers, {BASE_LAYER}) == 1
    assert present_prefix(layers, {BASE_LAYER, COMMIT_CHAIN}) == 2
    # The commit's layer on top of another base is another chain: it must be sent.
    assert present_prefix(layers, {COMMIT_CHAIN}) == 0
    assert present_prefix(layers, {COMMIT_LAYER}) == 0


def saved_image(layers_twice=False):
    """A `docker save` stream: two layer directories, a config, a manifest (and a third
    layer linked to the first, as save does for a layer that appears twice)."""
    members = {"aaa/VERSION": b"1.0", "aaa/json": b"{}", "aaa/layer.tar": b"base" * 1000,
               "bbb/VERSION": b"1.0", "bbb/json": b"{}", "bbb/layer.tar": b"top" * 333,
               "cfg.json": b"{}"}
    layers = ["aaa/layer.tar", "bbb/layer.tar"] + (["ccc/layer.tar"] if layers_twice else [])
    members["manifest.json"] = json.dumps([{"Config": "cfg.json", "RepoTags": None, "Layers": layers}]).encode()
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        for directory in ("aaa", "bbb") + (("ccc",) if layers_twice else ()):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            archive.addfile(info)
        if layers_twice:
            info = tarfile.TarInfo("ccc/layer.tar")
            info.type, info.linkname = tarfile.SYMTYPE, "../aaa/layer.tar"
            archive.addfile(info)
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    raw = data.getvalue()
    return [raw[i:i + 1000] for i in range(0, len(raw), 1000)], members


def files_under(directory):
    found = {}
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, directory)] = os.readlink(path) if os.path.islink(path) else open(
                path, "rb").read()
    return found


def test_extract_unpacks_a_save_stream(tmp_path):
    chunks, members = saved_image()
    extract(chunks, str(tmp_path / "image"))
    assert files_under(tmp_path / "image") == members


@pytest.mark.parametrize("bad", ["../escape", "/etc/passwd", "aaa/../../escape"])
def test_extract_refuses_entries_outside_its_directory(tmp_path, bad):
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w") as archive:
        info = tarfile.TarInfo(bad)
        info.size = 1
        archive.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(DockerError):
        extract([data.getvalue()], str(tmp_path / "image"))
    assert not (tmp_path / "escape").exists()


def test_drop_layers_keeps_config_manifest_and_the_layers_to_send(tmp_path):
    chunks, members = saved_image()
    extract(chunks, str(tmp_path))
    manifest = json.loads(members["manifest.json"])[0]
    assert drop_layers(str(tmp_path), manifest, 1) == ["bbb/layer.tar"]
    assert sorted(files_under(tmp_path)) == ["bbb/VERSION", "bbb/json", "bbb/layer.tar", "cfg.json", "manifest.json"]
    assert tree_bytes(str(tmp_path)) == sum(len(members[name]) for name in files_under(tmp_path))


def test_drop_layers_keeps_a_skipped_layer_that_a_sent_one_links_to(tmp_path):
    chunks, members = saved_image(layers_twice=True)
    extract(chunks, str(tmp_path))
    manifest = json.loads(members["manifest.json"])[0]
    drop_layers(str(tmp_path), manifest, 2)
    left = files_under(tmp_path)
    assert "bbb/layer.tar" not in left
    assert left["ccc/layer.tar"] == "../aaa/layer.tar" and left["aaa/layer.tar"] == members["aaa/layer.tar"]


def test_tar_stream_is_a_tar_of_the_directory(tmp_path):
    chunks, members = saved_image(layers_twice=True)
    extract(chunks, str(tmp_path / "image"))
    stream = list(tar_stream(str(tmp_path / "image"), chunk_size=100))
    assert sum(len(chunk) for chunk in stream) % 512 == 0
    extract(stream, str(tmp_path / "again"))
    assert files_under(tmp_path / "again") == files_under(tmp_path / "image")
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as archive:
        assert archive.getmember("ccc/layer.tar").issym()
        assert archive.getmember("aaa").isdir()
