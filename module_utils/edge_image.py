"""A container's image, moved by its identity: the destination gets the very image (same
image ID) the container runs on the source, either by a digest a registry has it under or
straight from the source (`docker save` of the layers the destination lacks, `docker load`
there). A tag is never resolved again: it may have moved since the source pulled it."""

import hashlib
import json
import os
import re
import shutil
import tarfile

from ansible.module_utils.edge_docker import APIError, DockerError, NotFound

SAVE_MANIFEST = "manifest.json"
DOCKER_HUB = "docker.io"
STREAM_CHUNK = 1 << 20
TAR_BLOCK = 512
_HEX_ID = re.compile(r"(sha256:)?[0-9a-f]{12,64}")


def split_reference(name):
    """(repository, tag, digest) of an image reference; tag and digest are None when absent."""
    name, _sep, digest = name.partition("@")
    slash, colon = name.rfind("/"), name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:], digest or None
    return name, None, digest or None


def normalize_repository(repository):
    """The fully qualified repository name (`redis` is `docker.io/library/redis`)."""
    first, _sep, rest = repository.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        first, rest = DOCKER_HUB, repository
    if first in ("index.docker.io", "registry-1.docker.io"):
        first = DOCKER_HUB
    if first == DOCKER_HUB and "/" not in rest:
        rest = "library/" + rest
    return first + "/" + rest


def reference_kind(name, image_id):
    """How a container names its image: `id` (an image id or a prefix of it), `digest`
    (repo@sha256:...) or `tag` (repo[:tag])."""
    if _HEX_ID.fullmatch(name) and image_id.split(":")[-1].startswith(name.split(":")[-1]):
        return "id"
    return "digest" if "@" in name else "tag"


def tag_of(name):
    """(repository, tag) that a tag reference means, `latest` when it names none."""
    repository, tag, _digest = split_reference(name)
    return repository, tag or "latest"


def digest_candidates(name, repo_digests):
    """The digest references to try a pull with, those of the container's own repository first."""
    own = normalize_repository(split_reference(name)[0])
    return sorted(repo_digests or [], key=lambda ref: normalize_repository(split_reference(ref)[0]) != own)


def chain_ids(diff_ids):
    """Chain ids of an image's layer stack: a layer is shared only with the same layers below it."""
    chains = []
    for diff_id in diff_ids:
        if chains:
            diff_id = "sha256:" + hashlib.sha256(("%s %s" % (chains[-1], diff_id)).encode()).hexdigest()
        chains.append(diff_id)
    return chains


def present_prefix(diff_ids, chains_present):
    """How many of the image's lowest layers an engine with these chain ids already has."""
    count = 0
    for chain in chain_ids(diff_ids):
        if chain not in chains_present:
            break
        count += 1
    return count


def image_facts(api, image):
    """Id, repo digests, repo tags and layers (diff ids) of an image, or None when absent."""
    try:
        inspect = api.inspect_image(image)
    except NotFound:
        return None
    except APIError as exc:
        raise DockerError("cannot inspect image %s: %s" % (image, exc), cmd="GET /images/%s/json" % image) from exc
    return {"id": inspect["Id"], "repo_digests": inspect.get("RepoDigests") or [],
            "repo_tags": inspect.get("RepoTags") or [],
            "layers": (inspect.get("RootFS") or {}).get("Layers") or []}


def local_chains(api):
    """Chain ids of every layer stack the engine has (from its images' layers)."""
    chains = set()
    try:
        for image_id in api.images(all=True, quiet=True):
            facts = image_facts(api, image_id)
            if facts:
                chains.update(chain_ids(facts["layers"]))
    except APIError as exc:
        raise DockerError("cannot list images: %s" % exc, cmd="GET /images/json?all=1") from exc
    return chains


def resolves_to(api, name):
    """The image id a reference resolves to here, or None."""
    facts = image_facts(api, name)
    return facts["id"] if facts else None


def pull_digest(api, reference):
    """Pull repo@sha256:... (a digest names one manifest, whatever a tag says now); the
    resulting image id."""
    repository, _tag, digest = split_reference(reference)
    try:
        for event in api.pull(repository, tag=digest, stream=True, decode=True):
            if "error" in event:
                raise DockerError("pull of %s failed: %s" % (reference, event["error"]),
                                  cmd="docker pull %s" % reference)
    except APIError as exc:
        raise DockerError("pull of %s failed: %s" % (reference, exc), cmd="docker pull %s" % reference) from exc
    return resolves_to(api, reference)


def tag(api, image_id, name):
    repository, tag_name = tag_of(name)
    try:
        api.tag(image_id, repository, tag_name, force=True)
    except APIError as exc:
        raise DockerError("cannot tag %s as %s: %s" % (image_id, name, exc),
                          cmd="POST /images/%s/tag?repo=%s&tag=%s" % (image_id, repository, tag_name)) from exc


class _ChunkReader:
    """A file object over an iterator of byte chunks (for tarfile's stream mode)."""

    def __init__(self, chunks):
        self.chunks = iter(chunks)
        self.buffer = b""

    def read(self, size=-1):
        while size < 0 or len(self.buffer) < size:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.buffer += chunk
        if size < 0:
            size = len(self.buffer)
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data


def _safe_target(root, name, relative_to=None):
    """root/name (or relative_to/name), refused when it is not inside root."""
    path = os.path.normpath(os.path.join(relative_to or root, name))
    if os.path.isabs(name) or not path.startswith(root + os.sep):
        raise DockerError("`docker save` produced an entry outside its directory: %r" % name)
    return path


def extract(chunks, directory):
    """Unpack a `docker save` stream into directory (plain files, directories and the
    relative symbolic links save makes for a layer that appears twice)."""
    directory = os.path.abspath(directory)
    with tarfile.open(fileobj=_ChunkReader(chunks), mode="r|") as archive:
        for member in archive:
            path = _safe_target(directory, member.name)
            if member.isdir():
                os.makedirs(path, exist_ok=True)
            elif member.issym():
                _safe_target(directory, member.linkname, relative_to=os.path.dirname(path))
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.symlink(member.linkname, path)
            elif member.isfile():
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as handle:
                    shutil.copyfileobj(archive.extractfile(member), handle, STREAM_CHUNK)
            else:
                raise DockerError("`docker save` produced an unexpected entry %r (type %r)"
                                  % (member.name, member.type))


def save(api, image_id, directory):
    """`docker save` of the image into directory, unpacked; its manifest entry."""
    shutil.rmtree(directory, ignore_errors=True)  # what an interrupted save left
    os.makedirs(os.path.dirname(os.path.abspath(directory)), mode=0o700, exist_ok=True)
    os.makedirs(directory, mode=0o700)
    try:
        extract(api.get_image(image_id, chunk_size=STREAM_CHUNK), directory)
    except (APIError, tarfile.TarError) as exc:
        raise DockerError("docker save of %s failed: %s" % (image_id, exc),
                          cmd="GET /images/%s/get" % image_id) from exc
    with open(os.path.join(directory, SAVE_MANIFEST)) as handle:
        return json.load(handle)[0]


def drop_layers(directory, manifest, skip):
    """Delete the saved files of the image's `skip` lowest layers (the destination has them:
    `docker load` only reads a layer whose chain it lacks); returns the layers kept."""
    kept = manifest["Layers"][skip:]
    needed = set()
    for layer in kept:
        path = os.path.join(directory, layer)
        # save links a layer that appears twice in the stack to its first copy.
        needed.update({os.path.dirname(os.path.realpath(path)), os.path.realpath(os.path.dirname(path))})
    for layer in manifest["Layers"][:skip]:
        layer_dir = os.path.realpath(os.path.dirname(os.path.join(directory, layer)))
        if layer_dir not in needed:
            shutil.rmtree(layer_dir, ignore_errors=True)
    return kept


def tar_stream(directory, chunk_size=STREAM_CHUNK):
    """A tar archive of directory, generated chunk by chunk (for `docker load` of a saved
    image without a second copy of it on disk)."""
    for root, dirs, files in os.walk(directory):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            path = os.path.join(root, name)
            info = tarfile.TarInfo(os.path.relpath(path, directory))
            stat = os.lstat(path)
            info.mode, info.mtime = stat.st_mode & 0o7777, int(stat.st_mtime)
            if os.path.islink(path):
                info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
            elif os.path.isdir(path):
                info.type = tarfile.DIRTYPE
            else:
                info.size = stat.st_size
            yield info.tobuf(tarfile.PAX_FORMAT)
            if info.isfile():
                with open(path, "rb") as handle:
                    while True:
                        data = handle.read(chunk_size)
                        if not data:
                            break
                        yield data
                if info.size % TAR_BLOCK:
                    yield b"\0" * (TAR_BLOCK - info.size % TAR_BLOCK)
    yield b"\0" * (2 * TAR_BLOCK)


def load(api, directory):
    """`docker load` of a saved image directory; the ids the engine reports it loaded."""
    loaded = []
    try:
        for event in api.load_image(tar_stream(directory)):
            if "error" in event:
                raise DockerError("docker load failed: %s" % event["error"], cmd="POST /images/load")
            stream = event.get("stream") or ""
            if "Loaded image" in stream:
                loaded.append(stream.split(":", 1)[1].strip())
    except APIError as exc:
        raise DockerError("docker load failed: %s" % exc, cmd="POST /images/load") from exc
    return loaded


def tree_bytes(directory):
    total = 0
    for root, _dirs, files in os.walk(directory):
        total += sum(os.lstat(os.path.join(root, name)).st_size for name in files)
    return total
