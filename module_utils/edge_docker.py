"""Docker Engine access for the migration modules: container configuration, checkpoint,
create-from-configuration and restore, through the Docker SDK's low-level API client."""

import os
import shutil
import time

from ansible.module_utils.edge_errors import EdgeError

try:
    import docker
    from docker.errors import APIError, DockerException, NotFound
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError as exc:  # reported by the modules with missing_required_lib
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = exc
    APIError = DockerException = NotFound = Exception

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# The OCI runtime (roles/edge_runtime) that restores from images left in place, and the
# marker file naming them inside an otherwise empty checkpoint.
MIGRATION_RUNTIME = "edge-migrate"
IMAGES_MARKER = "edge-migrate-images"

# The parts of `docker inspect` that make a container what it is. A container created on
# the destination from these runs the same program the same way.
CONFIG_KEYS = ("Image", "Cmd", "Entrypoint", "Env", "Labels", "ExposedPorts", "WorkingDir",
               "User", "Tty", "OpenStdin", "StdinOnce", "AttachStdin", "StopSignal",
               "StopTimeout", "Healthcheck", "Volumes", "Domainname")
HOST_CONFIG_KEYS = ("PortBindings", "Binds", "Mounts", "RestartPolicy", "NetworkMode",
                    "Memory", "MemorySwap", "NanoCpus", "CpuShares", "CapAdd", "CapDrop",
                    "Privileged", "SecurityOpt", "ExtraHosts", "Dns", "DnsSearch", "Tmpfs",
                    "ShmSize", "Sysctls", "Ulimits", "LogConfig", "Init", "IpcMode",
                    "PidMode", "ReadonlyRootfs", "Runtime", "AutoRemove")


class DockerError(EdgeError):
    """A Docker Engine call failed; `cmd` names the API call."""


def connect(docker_host, timeout=120):
    try:
        api = docker.APIClient(base_url=docker_host, version="auto", timeout=timeout)
        api.ping()
        return api
    except DockerException as exc:
        raise DockerError("cannot reach the Docker Engine at %s: %s" % (docker_host, exc),
                          cmd="GET /_ping") from exc


def engine_info(api):
    """What the migration needs to know about an engine: version, experimental, data root."""
    info = api.info()
    version = api.version()
    return {
        "version": version.get("Version"),
        "api_version": version.get("ApiVersion"),
        "experimental": bool(version.get("Experimental") or info.get("ExperimentalBuild")),
        "root_dir": info.get("DockerRootDir"),
        "runtimes": sorted((info.get("Runtimes") or {}).keys()),
    }


def inspect_container(api, name):
    """The container's inspect document, or None when no container has that name."""
    try:
        return api.inspect_container(name)
    except NotFound:
        return None
    except APIError as exc:
        raise DockerError("cannot inspect container %s: %s" % (name, exc),
                          cmd="GET /containers/%s/json" % name) from exc


def portable_config(inspect):
    """The configuration to create the same container on another engine."""
    config = inspect.get("Config") or {}
    host_config = inspect.get("HostConfig") or {}
    body = {key: config[key] for key in CONFIG_KEYS if config.get(key) not in (None, "", [], {})}
    body["HostConfig"] = {key: host_config[key] for key in HOST_CONFIG_KEYS
                          if host_config.get(key) not in (None, "", [], {}, 0)}
    if body["HostConfig"].get("Runtime") == MIGRATION_RUNTIME:
        del body["HostConfig"]["Runtime"]  # each destination decides whether it has it
    return body


def summary(inspect):
    """A short, readable description of a container (for results and reports)."""
    state = inspect.get("State") or {}
    return {
        "id": inspect.get("Id"),
        "name": (inspect.get("Name") or "").lstrip("/"),
        "image": (inspect.get("Config") or {}).get("Image"),
        "status": state.get("Status"),
        "running": bool(state.get("Running")),
        "pid": state.get("Pid"),
        "restart_policy": ((inspect.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name", ""),
    }


def memory_usage(api, container_id):
    """Resident memory of the container's cgroup in bytes (0 when unknown)."""
    try:
        stats = api.stats(container_id, stream=False)
    except APIError:
        return 0
    return int((stats.get("memory_stats") or {}).get("usage") or 0)


def checkpoint(api, container, checkpoint_dir, checkpoint_id, leave_running):
    """Checkpoint through the engine's checkpoint endpoint; images land in checkpoint_dir/checkpoint_id."""
    body = {"CheckpointID": checkpoint_id, "CheckpointDir": checkpoint_dir, "Exit": not leave_running}
    url = api._url("/containers/{0}/checkpoints", container)
    try:
        api._raise_for_status(api._post_json(url, data=body))
    except APIError as exc:
        raise DockerError("checkpoint of %s failed: %s" % (container, _explain(exc)),
                          cmd="POST /containers/%s/checkpoints %s" % (container, body)) from exc
    return os.path.join(checkpoint_dir, checkpoint_id)


def set_restart_policy(api, container, policy):
    try:
        api.update_container(container, restart_policy=policy)
    except APIError as exc:
        raise DockerError("cannot set the restart policy of %s: %s" % (container, exc),
                          cmd="POST /containers/%s/update" % container) from exc


def hold_restart_policy(api, inspect):
    """Set the restart policy to `no` so that dockerd does not restart a container stopped
    by its checkpoint on this host; returns the policy it had (for the destination or a rollback)."""
    policy = (inspect.get("HostConfig") or {}).get("RestartPolicy") or {}
    if policy.get("Name") not in (None, "", "no"):
        set_restart_policy(api, inspect["Id"], {"Name": "no"})
    return policy


def data_root(api):
    """The engine's DockerRootDir (where it looks for a container's checkpoints)."""
    return api.info().get("DockerRootDir")


def pull(api, image):
    """Pull an image (a no-op transfer when it is present and current)."""
    repository, tag = _split_image(image)
    try:
        for event in api.pull(repository, tag=tag, stream=True, decode=True):
            if "error" in event:
                raise DockerError("pull of %s failed: %s" % (image, event["error"]), cmd="docker pull %s" % image)
    except APIError as exc:
        raise DockerError("pull of %s failed: %s" % (image, exc), cmd="docker pull %s" % image) from exc


def image_present(api, image):
    try:
        api.inspect_image(image)
        return True
    except NotFound:
        return False


def create(api, name, config):
    """Create (not start) a container named `name` from a portable configuration."""
    url = api._url("/containers/create")
    try:
        result = api._result(api._post_json(url, data=config, params={"name": name}), True)
    except APIError as exc:
        raise DockerError("cannot create container %s: %s" % (name, _explain(exc)),
                          cmd="POST /containers/create?name=%s" % name) from exc
    return result["Id"]


def place_checkpoint(images_dir, root_dir, container_id, checkpoint_id):
    """Put a checkpoint where dockerd looks for it: `docker start --checkpoint` ignores a
    custom checkpoint directory (moby#37344). A rename when on the same filesystem."""
    target_parent = os.path.join(root_dir, "containers", container_id, "checkpoints")
    target = os.path.join(target_parent, checkpoint_id)
    os.makedirs(target_parent, mode=0o700, exist_ok=True)
    if os.path.exists(target):
        shutil.rmtree(target)
    try:
        os.rename(images_dir, target)
    except OSError:
        shutil.copytree(images_dir, target, symlinks=True)
        shutil.rmtree(images_dir)
    return target


def place_images_marker(images_dir, root_dir, container_id, checkpoint_id):
    """A checkpoint holding only the path of the images, for the edge-migrate runtime: the
    engine's copy through containerd is then nearly free and CRIU reads images_dir itself."""
    target = os.path.join(root_dir, "containers", container_id, "checkpoints", checkpoint_id)
    if os.path.exists(target):
        shutil.rmtree(target)
    os.makedirs(target, mode=0o700)
    with open(os.path.join(target, IMAGES_MARKER), "w") as handle:
        handle.write(os.path.abspath(images_dir))
    return target


def start_from_checkpoint(api, container_id, checkpoint_id):
    url = api._url("/containers/{0}/start", container_id)
    params = {"checkpoint": checkpoint_id} if checkpoint_id else {}
    try:
        api._raise_for_status(api._post(url, params=params))
    except APIError as exc:
        raise DockerError("start of %s from checkpoint %s failed: %s"
                          % (container_id[:12], checkpoint_id, _explain(exc)),
                          cmd="POST /containers/%s/start?checkpoint=%s" % (container_id[:12], checkpoint_id)) from exc


def wait_running(api, container_id, timeout=10.0):
    """Return once the container is running; fail if it exits or does not get there in time."""
    deadline = time.monotonic() + timeout
    while True:
        state = (api.inspect_container(container_id).get("State") or {})
        if state.get("Running"):
            return state
        if state.get("Status") in ("exited", "dead") or time.monotonic() > deadline:
            raise DockerError("container %s is %s after start (exit code %s, error %r)"
                              % (container_id[:12], state.get("Status"), state.get("ExitCode"), state.get("Error")),
                              cmd="GET /containers/%s/json" % container_id[:12])
        time.sleep(0.02)


def still_running(api, container_id, settle):
    """Check after `settle` seconds that the container did not exit right after starting."""
    time.sleep(settle)
    state = api.inspect_container(container_id).get("State") or {}
    if not state.get("Running"):
        logs = api.logs(container_id, tail=5).decode(errors="replace").strip()
        raise DockerError("container %s exited %.1f s after start (exit code %s): %s"
                          % (container_id[:12], settle, state.get("ExitCode"), logs or "no output"),
                          cmd="GET /containers/%s/json" % container_id[:12], stderr=logs)


def remove(api, container, force=True):
    try:
        api.remove_container(container, force=force, v=False)
        return True
    except NotFound:
        return False
    except APIError as exc:
        raise DockerError("cannot remove container %s: %s" % (container, exc),
                          cmd="DELETE /containers/%s" % container) from exc


def stop(api, container, timeout=10):
    try:
        api.stop(container, timeout=timeout)
    except APIError as exc:
        raise DockerError("cannot stop container %s: %s" % (container, exc),
                          cmd="POST /containers/%s/stop" % container) from exc


def _split_image(image):
    if "@" in image:
        return image, None
    name, _, tag = image.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return image, "latest"


def _explain(exc):
    return getattr(exc, "explanation", None) or str(exc)
