"""Docker Engine access for the migration modules: container configuration, checkpoint,
create-from-configuration and restore, through the Docker SDK's low-level API client."""

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

from ansible.module_utils.edge_criu_options import write_restore_conf
from ansible.module_utils.edge_engine_names import IMAGES_MARKER, MIGRATION_RUNTIME, WORK_MARKER
from ansible.module_utils.edge_errors import EdgeError
from ansible.module_utils.edge_private_dir import private_work_dir, write_own_file


def _stdlib_distutils_first():
    """Docker SDKs before 6.0 import distutils.spawn (dropped in docker/docker-py#3028). Where
    setuptools' distutils shim is installed (Debian 12's python3-setuptools, the system Python
    the modules run on) that import loads all of setuptools and pkg_resources: 0.3-0.5 s of
    every module call that talks to Docker. The standard library's distutils (Python < 3.12)
    answers the same import at once; where there is none the shim stays in charge."""
    shims = [finder for finder in sys.meta_path if type(finder).__module__ == "_distutils_hack"]
    if not shims or "distutils" in sys.modules:
        return
    for shim in shims:
        sys.meta_path.remove(shim)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import distutils.spawn  # noqa: F401
    except ImportError:
        pass
    finally:
        sys.meta_path[0:0] = shims


_stdlib_distutils_first()

try:
    import docker
    from docker.errors import APIError, DockerException, NotFound
    HAS_DOCKER = True
    DOCKER_IMPORT_ERROR = None
except ImportError as exc:  # reported by the modules with missing_required_lib
    HAS_DOCKER = False
    DOCKER_IMPORT_ERROR = exc

    # Stand-ins with the SDK's hierarchy, never raised: `except NotFound` before `except
    # APIError` stays meaningful, and nothing else is caught by them.
    class DockerException(Exception):
        pass

    class APIError(DockerException):
        pass

    class NotFound(APIError):
        pass


# The parts of `docker inspect` that make a container what it is. A container created on
# the destination from these runs the same program the same way.
CONFIG_KEYS = ("Image", "Cmd", "Entrypoint", "Env", "Labels", "ExposedPorts", "WorkingDir",
               "User", "Tty", "OpenStdin", "StdinOnce", "AttachStdin", "StopSignal",
               "StopTimeout", "Healthcheck", "Volumes", "Domainname", "Hostname")
HOST_CONFIG_KEYS = ("PortBindings", "Binds", "Mounts", "RestartPolicy", "NetworkMode",
                    "Memory", "MemorySwap", "NanoCpus", "CpuShares", "CapAdd", "CapDrop",
                    "Privileged", "SecurityOpt", "ExtraHosts", "Dns", "DnsSearch", "Tmpfs",
                    "ShmSize", "Sysctls", "Ulimits", "LogConfig", "Init", "IpcMode",
                    "PidMode", "ReadonlyRootfs", "Runtime", "PidsLimit", "CpuQuota",
                    "CpuPeriod", "CpusetCpus", "CpusetMems", "MemoryReservation", "OomKillDisable",
                    "GroupAdd", "Devices", "UTSMode", "Isolation", "CgroupnsMode", "OomScoreAdj",
                    "PublishAllPorts", "DnsOptions", "MemorySwappiness", "BlkioWeight", "BlkioWeightDevice",
                    "BlkioDeviceReadBps", "BlkioDeviceWriteBps", "BlkioDeviceReadIOps",
                    "BlkioDeviceWriteIOps", "CpuRealtimePeriod", "CpuRealtimeRuntime", "UsernsMode")
# HostConfig entries that are not the container's own settings: what the client that ran it
# wrote (ContainerIDFile, ConsoleSize), the engine's defaults for every container (MaskedPaths,
# ReadonlyPaths, set by --security-opt systempaths and --privileged, which are carried), and
# settings of Windows engines.
ENGINE_HOST_CONFIG_KEYS = ("ContainerIDFile", "ConsoleSize", "MaskedPaths", "ReadonlyPaths", "CpuCount",
                           "CpuPercent", "IOMaximumIOps", "IOMaximumBandwidth")
# HostConfig settings a migration cannot carry, and why: a container that has one is refused
# before anything is frozen rather than moved without it.
UNCARRIED_SETTINGS = {
    "AutoRemove": ("--rm", "the engine would delete the container and its files the moment the final checkpoint "
                   "stops it, leaving no way back; start it with --restart no instead"),
    "VolumesFrom": ("--volumes-from", "it names another container, which does not move with it"),
    "Links": ("--link", "it names another container, which does not move with it; use a user-defined network"),
    "Cgroup": ("", "it names another container's cgroup"),
    "CgroupParent": ("--cgroup-parent", "it places the container in a cgroup of the destination's host"),
    "DeviceCgroupRules": ("--device-cgroup-rule", "it opens the destination's devices to the container"),
    "DeviceRequests": ("--gpus", "CRIU cannot checkpoint a device's state"),
    "VolumeDriver": ("--volume-driver", "its volumes live in a volume plugin, not on the host"),
    "KernelMemory": ("--kernel-memory", "newer engines no longer accept it"),
    "KernelMemoryTCP": ("--kernel-memory-tcp", "newer engines no longer accept it"),
    "Annotations": ("--annotation", "engines before API 1.43 do not keep it"),
}
# HostConfig settings that are carried, but not with these values: (setting, the values, flag, why).
UNCARRIED_VALUES = (
    ("IpcMode", lambda mode: mode == "shareable", "--ipc shareable",
     "the engine mounts its /dev/shm from the host for other containers to join, and CRIU leaves such a mount "
     "out of the checkpoint: the files in it would be lost; start it with --ipc private, the engine's default "
     "since Docker 20.10"),
    ("IpcMode", lambda mode: mode.startswith("container:"), "--ipc container:NAME",
     "it shares another container's IPC namespace and /dev/shm, which do not move with it"),
    ("PidMode", lambda mode: mode.startswith("container:"), "--pid container:NAME",
     "it shares another container's processes, which do not move with it"),
)
# Networks every engine has under these names (NetworkMode `default` is `bridge`).
PREDEFINED_NETWORKS = ("bridge", "host", "none", "default")
# What of a container's endpoint on a user-defined network it asked for (its address and
# DNS names there); the rest (endpoint id, MAC, gateway) comes from the destination's engine.
IPAM_CONFIG_KEYS = ("IPv4Address", "IPv6Address", "LinkLocalIPs")


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


def health_probe_command(config):
    """The command the engine runs for the container's health probes (as an exec's entrypoint
    and arguments), or None without a health check."""
    test = list((config.get("Healthcheck") or {}).get("Test") or [])
    if test[:1] == ["CMD"]:
        return test[1:]
    if test[:1] == ["CMD-SHELL"]:
        return list(config.get("Shell") or ["/bin/sh", "-c"]) + test[1:]
    return None


def exec_processes(api, inspect):
    """The container's running `docker exec` processes, as "pid (command)", but the engine's
    health probes. CRIU dumps the tree of the container's first process; an exec'd process is
    a child of the engine's shim, outside that tree, so a checkpoint leaves it out and the
    container's end kills it. A probe is started again by the destination's engine."""
    probe = health_probe_command(inspect.get("Config") or {})
    found = []
    for exec_id in inspect.get("ExecIDs") or []:
        try:
            info = api.exec_inspect(exec_id)
        except NotFound:  # ended and removed meanwhile
            continue
        except APIError as exc:
            raise DockerError("cannot inspect exec %s of container %s: %s" % (exec_id[:12], inspect.get("Name"), exc),
                              cmd="GET /exec/%s/json" % exec_id) from exc
        process = info.get("ProcessConfig") or {}
        command = [process.get("entrypoint") or ""] + list(process.get("arguments") or [])
        if info.get("Running") and command != probe:
            found.append("%s (%s)" % (info.get("Pid"), " ".join(str(word) for word in command)[:80]))
    return found


def portable_config(inspect):
    """The configuration to create the same container on another engine."""
    config = inspect.get("Config") or {}
    host_config = inspect.get("HostConfig") or {}
    # The hostname is kept even when the engine chose it (the short id): the restored processes
    # keep it (CRIU restores the UTS namespace), and the engine writes it into /etc/hosts.
    body = {key: config[key] for key in CONFIG_KEYS if config.get(key) not in (None, "", [], {})}
    body["HostConfig"] = {key: host_config[key] for key in HOST_CONFIG_KEYS
                          if host_config.get(key) not in (None, "", [], {}, 0)}
    if body["HostConfig"].get("Runtime") == MIGRATION_RUNTIME:
        del body["HostConfig"]["Runtime"]  # each destination decides whether it has it
    endpoints = container_endpoints(inspect)
    if endpoints:
        body["NetworkingConfig"] = {"EndpointsConfig": endpoints}
        mode = body["HostConfig"].get("NetworkMode")
        if mode not in endpoints and len(endpoints) == 1 and is_user_network(mode):
            # Started with --network <network id>: the destination's network has another id.
            body["HostConfig"]["NetworkMode"] = next(iter(endpoints))
    return body


def uncarried_settings(inspect):
    """The container's HostConfig settings that portable_config leaves out, and the carried ones
    whose value a migration cannot keep, each as {setting, flag, why}: a container created from
    it would run without them, or without what they hold."""
    host_config = inspect.get("HostConfig") or {}
    found = [{"setting": key, "flag": flag, "why": why} for key, refused, flag, why in UNCARRIED_VALUES
             if isinstance(host_config.get(key), str) and refused(host_config[key])]
    for key, value in sorted(host_config.items()):
        if key in HOST_CONFIG_KEYS or key in ENGINE_HOST_CONFIG_KEYS or value in (None, "", [], {}, 0):
            continue
        if key == "VolumeDriver" and value == "local":
            continue
        flag, why = UNCARRIED_SETTINGS.get(key, ("", "the migration does not know this setting"))
        found.append({"setting": key, "flag": flag, "why": why})
    return found


def is_user_network(mode):
    return bool(mode) and mode not in PREDEFINED_NETWORKS and not mode.startswith("container:")


def container_endpoints(inspect):
    """The container's user-defined networks by name, each with the aliases and static
    addresses it was given there (the alias the engine adds, its short id, left out)."""
    endpoints = {}
    container_id = inspect.get("Id") or ""
    for name, endpoint in sorted(((inspect.get("NetworkSettings") or {}).get("Networks") or {}).items()):
        if not is_user_network(name):
            continue
        endpoint = endpoint or {}
        wanted = {}
        aliases = [alias for alias in endpoint.get("Aliases") or []
                   if not (len(alias) >= 12 and container_id.startswith(alias))]
        if aliases:
            wanted["Aliases"] = aliases
        ipam = {key: value for key, value in (endpoint.get("IPAMConfig") or {}).items()
                if key in IPAM_CONFIG_KEYS and value}
        if ipam:
            wanted["IPAMConfig"] = ipam
        endpoints[name] = wanted
    return endpoints


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
    """Resident memory of the container's cgroup in bytes (0 when unknown). One sample
    (`one-shot`, API 1.41, moby/moby#40478): without it the engine waits for a second sample,
    a second later, to compute CPU usage. Docker SDKs before 6.1 have no argument for it."""
    url = api._url("/containers/{0}/stats", container_id)
    try:
        stats = api._result(api._get(url, params={"stream": False, "one-shot": True}), json=True)
    except APIError:
        return 0
    return int((stats.get("memory_stats") or {}).get("usage") or 0)


def checkpoint(api, container, checkpoint_dir, checkpoint_id, leave_running):
    """Checkpoint through the engine's checkpoint endpoint (the SDK has no call for it); images
    land in checkpoint_dir/checkpoint_id."""
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


RESTART_POLICY_FILE = "restart_policy.json"


def hold_restart_policy(api, inspect, record_dir=None):
    """Set the restart policy to `no` so that dockerd does not restart a container stopped
    by its checkpoint on this host; returns the policy it had (for the destination or a rollback).
    With record_dir, the policy is first written there (a recovery finds it after a killed controller)."""
    policy = (inspect.get("HostConfig") or {}).get("RestartPolicy") or {}
    if policy.get("Name") not in (None, "", "no"):
        if record_dir:
            write_own_file(os.path.join(record_dir, RESTART_POLICY_FILE), json.dumps(policy))
        set_restart_policy(api, inspect["Id"], {"Name": "no"})
    return policy


def recorded_restart_policy(record_dir):
    """The restart policy hold_restart_policy recorded in record_dir, or None."""
    try:
        with open(os.path.join(record_dir, RESTART_POLICY_FILE)) as handle:
            policy = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(policy, dict) or policy.get("Name") not in ("always", "unless-stopped", "on-failure"):
        return None
    count = policy.get("MaximumRetryCount", 0)
    return {"Name": policy["Name"], "MaximumRetryCount": count if isinstance(count, int) and 0 <= count < 1000 else 0}


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


def rename(api, container, name):
    try:
        api.rename(container, name)
    except APIError as exc:
        raise DockerError("cannot rename container %s to %s: %s" % (container[:12], name, exc),
                          cmd="POST /containers/%s/rename?name=%s" % (container[:12], name)) from exc


def inspect_image_id(api, image):
    """The id of the image a reference names on this engine, or None."""
    try:
        return api.inspect_image(image).get("Id")
    except NotFound:
        return None
    except APIError as exc:
        raise DockerError("cannot inspect image %s: %s" % (image, exc), cmd="GET /images/%s/json" % image) from exc


def image_present(api, image):
    try:
        api.inspect_image(image)
        return True
    except NotFound:
        return False


def create(api, name, config):
    """Create (not start) a container named `name` from a portable configuration, connected
    to each network of its NetworkingConfig."""
    config, more = split_endpoints(config)
    try:
        result = api.create_container_from_config(config, name=name)
    except APIError as exc:
        raise DockerError("cannot create container %s: %s" % (name, _explain(exc)),
                          cmd="POST /containers/create?name=%s" % name) from exc
    # The endpoint goes as the source had it: connect_container_to_network takes only some of its fields.
    for network, endpoint in more.items():
        try:
            api._raise_for_status(api._post_json(api._url("/networks/{0}/connect", network),
                                                 data={"Container": result["Id"], "EndpointConfig": endpoint}))
        except APIError as exc:
            remove(api, result["Id"])
            raise DockerError("cannot connect container %s to network %s: %s" % (name, network, _explain(exc)),
                              cmd="POST /networks/%s/connect" % network) from exc
    return result["Id"]


def split_endpoints(config):
    """(create body, {network: endpoint} to connect after the create): engines before API
    1.44 take one endpoint at create, that of NetworkMode (moby#29265)."""
    endpoints = (config.get("NetworkingConfig") or {}).get("EndpointsConfig") or {}
    mode = (config.get("HostConfig") or {}).get("NetworkMode")
    if not endpoints or list(endpoints) == [mode]:
        return config, {}
    first = {mode: endpoints[mode]} if mode in endpoints else {}
    body = dict(config, NetworkingConfig={"EndpointsConfig": first})
    return body, {name: endpoint for name, endpoint in endpoints.items() if name != mode}


def place_checkpoint(images_dir, root_dir, container_id, checkpoint_id, criu_options=()):
    """Put a checkpoint where dockerd looks for it: `docker start --checkpoint` ignores a
    custom checkpoint directory (moby#37344). The images are hard-linked (copied across file
    systems), never moved: if the restore fails, images_dir still holds them."""
    target = _fresh_checkpoint_dir(root_dir, container_id, checkpoint_id)
    for entry in os.listdir(images_dir):
        source = os.path.join(images_dir, entry)
        if os.path.isdir(source) and not os.path.islink(source):
            shutil.copytree(source, os.path.join(target, entry), symlinks=True)
            continue
        try:
            os.link(source, os.path.join(target, entry), follow_symlinks=False)
        except OSError:
            shutil.copy2(source, os.path.join(target, entry), follow_symlinks=False)
    write_restore_conf(target, criu_options)
    return target


def place_images_marker(images_dir, root_dir, container_id, checkpoint_id, criu_options=()):
    """A checkpoint holding only the path of the images, for the edge-migrate runtime: the
    engine's copy through containerd is then nearly free and CRIU reads images_dir itself.
    Beside it, the path of CRIU's work directory for this restore (restore_work_dir)."""
    work_dir = private_work_dir(restore_work_dir(images_dir))
    target = _fresh_checkpoint_dir(root_dir, container_id, checkpoint_id)
    with open(os.path.join(target, IMAGES_MARKER), "w") as handle:
        handle.write(os.path.abspath(images_dir))
    with open(os.path.join(target, WORK_MARKER), "w") as handle:
        handle.write(work_dir)
    write_restore_conf(target, criu_options)
    return target


def restore_work_dir(images_dir):
    """Where CRIU works while the edge-migrate runtime restores images_dir (its log, its
    statistics, the lazy-pages daemon's socket, pid and exit code): a directory of the system's
    temporary directory named after images_dir. Not beside the images: other edges may write in
    the migration's directory, where a symlink named as CRIU's log has a root CRIU write through
    it, and a planted exit code would be read as the daemon's."""
    digest = hashlib.sha256(os.path.abspath(images_dir).encode()).hexdigest()[:24]
    return os.path.join(tempfile.gettempdir(), "edge-migrate-restore-" + digest)


def _fresh_checkpoint_dir(root_dir, container_id, checkpoint_id):
    target = os.path.join(root_dir, "containers", container_id, "checkpoints", checkpoint_id)
    os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
    if os.path.exists(target):
        shutil.rmtree(target)
    os.makedirs(target, mode=0o700)
    return target


def start_from_checkpoint(api, container_id, checkpoint_id):
    """POST /containers/ID/start?checkpoint=ID: the SDK's start() takes no checkpoint."""
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
    name, _sep, tag = image.rpartition(":")
    if name and "/" not in tag:
        return name, tag
    return image, "latest"


def _explain(exc):
    return getattr(exc, "explanation", None) or str(exc)
