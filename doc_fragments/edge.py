"""Documentation shared by the migration modules (their options come from module_utils:
DOCKER_ARGS in edge_module, SYNC_ARGS in edge_transfer, CHECKPOINT_ARGS in edge_module,
DELTA_ARGS in edge_images)."""


class ModuleDocFragment:
    # Talking to the host's Docker Engine.
    DOCUMENTATION = r"""
options:
  docker_host:
    description: Docker Engine address.
    type: str
    default: unix:///var/run/docker.sock
  docker_timeout:
    description: Seconds to wait for a Docker Engine call.
    type: int
    default: 120
"""

    # Pushing to another host with rsync over SSH.
    SYNC = r"""
options:
  dest_host:
    description: Address of the destination as this host reaches it.
    type: str
    required: true
  dest_dir:
    description:
      - Directory on the destination (created C(0700)).
      - It must lie below the destination's migration workdir or its engine's C(overlay2) or
        C(volumes) directory, the only places the destination's forced command (role
        edge_ssh_trust) lets another edge's key write.
    type: path
    required: true
  dest_user:
    description: SSH user on the destination.
    type: str
    default: root
  ssh_key:
    description: Private key this host uses to reach the destination.
    type: path
  known_hosts:
    description: known_hosts file with the destination's pinned host key.
    type: path
  ssh_port:
    description: SSH port of the destination.
    type: int
  timeout:
    description: rsync I/O timeout in seconds.
    type: int
    default: 60
  compress:
    description: Compress on the wire (worth it when the link is the bottleneck).
    type: bool
    default: false
  compress_choice:
    description: Compression rsync uses with I(compress) (C(zlib) is what C(rsync -z) used before zstd).
    type: str
    choices: [zstd, zlib]
    default: zstd
  ssh_control_path:
    description:
      - Socket of an SSH connection shared by this migration's transfers to the destination
        (opened by the first one, kept 30 s after the last), so the transfer in the frozen
        window does not pay an SSH handshake. In a private directory; ignored if longer than
        100 characters.
    type: path
"""

    # How a checkpoint is taken.
    CHECKPOINT = r"""
options:
  method:
    description:
      - C(runc) has dockerd's runc dump straight into the directory (fast; dockerd sees the
        container exit when it is not left running); C(docker) uses the engine's checkpoint
        endpoint, which copies the images through containerd's content store.
    type: str
    choices: [runc, docker]
    default: runc
  docker_exec_root:
    description: dockerd's C(--exec-root), where its runc keeps container state (I(method=runc)).
    type: path
    default: /run/docker
"""

    # How the delta between two checkpoints is computed.
    DELTA = r"""
options:
  min_delta_size:
    description: Files smaller than this are sent whole.
    type: int
    default: 65536
  workers:
    description: Parallel encodes and checksums (default the number of CPUs).
    type: int
  page_delta:
    description:
      - Describe memory pages files page by page against the earlier dump's pages at the same
        virtual addresses (read from CRIU's pagemaps; fast, no compression search). Other large
        files, and pages files this cannot pair, get an xdelta3 patch. C(false) sends xdelta3
        patches for every large file (as the reference prototype did).
    type: bool
    default: true
"""

    # A module that only reads.
    READ_ONLY = r"""
attributes:
  check_mode:
    support: full
    description: Reads only; the same in check mode.
  diff_mode:
    support: none
    description: Returns no diff.
"""

    # A push whose destination only receives real transfers: no check mode.
    PUSH_ONLY = r"""
attributes:
  check_mode:
    support: none
    description: The destination's forced command runs rsync's receiver only for real transfers.
  diff_mode:
    support: none
    description: Returns no diff.
"""
