"""Names the modules share with the Docker Engine and the edge-migrate OCI runtime, importable
without the Docker SDK (whose import costs a module call 0.1-0.5 s on a small edge)."""

DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"
# The OCI runtime (roles/edge_runtime) that restores from images left in place, and the
# marker file naming them inside an otherwise empty checkpoint.
MIGRATION_RUNTIME = "edge-migrate"
IMAGES_MARKER = "edge-migrate-images"
# Beside it, the directory where CRIU works during that restore (see edge_docker.restore_work_dir).
WORK_MARKER = "edge-migrate-work"
