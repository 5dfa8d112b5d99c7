"""The Docker SDK's import on the Python the modules run on: every module call that talks to
Docker pays it, so setuptools' distutils shim must not pull in setuptools with it."""

import os
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
MODULE_UTILS = os.path.join(HERE, "..", "..", "module_utils")
SYSTEM_PYTHON = "/usr/bin/python3"
PROBE = ("import sys; import ansible.module_utils.edge_docker as d; "
         "print(d.HAS_DOCKER, 'setuptools' in sys.modules, 'pkg_resources' in sys.modules)")


def _system_python_has(code):
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False
    return subprocess.run([SYSTEM_PYTHON, "-c", code], capture_output=True).returncode == 0


def test_the_docker_sdk_is_imported_without_setuptools(tmp_path):
    if not _system_python_has("import docker, _distutils_hack"):
        pytest.skip("%s has no Docker SDK or no setuptools distutils shim" % SYSTEM_PYTHON)
    package = tmp_path / "ansible" / "module_utils"
    package.mkdir(parents=True)
    (tmp_path / "ansible" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    for name in ("edge_docker.py", "edge_errors.py", "edge_criu_options.py", "edge_engine_names.py",
                 "edge_private_dir.py"):
        shutil.copy(os.path.join(MODULE_UTILS, name), package / name)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    env.pop("SETUPTOOLS_USE_DISTUTILS", None)
    probe = subprocess.run([SYSTEM_PYTHON, "-W", "error::DeprecationWarning", "-c", PROBE],
                           capture_output=True, text=True, env=env, cwd=str(tmp_path))
    assert probe.returncode == 0, probe.stderr
    assert probe.stdout.split() == ["True", "False", "False"]


FILE_MODULES = ("edge_delta", "edge_patch", "edge_sync", "edge_fs_sync", "edge_peer_check",
                "edge_engine_temporaries", "edge_lock", "edge_sync_progress", "edge_job")


def test_the_modules_that_work_on_files_do_not_import_the_docker_sdk():
    probe = ("import sys; sys.path.insert(0, %r); from module_runner import load_module\n"
             "for name in %r:\n    load_module(name)\n"
             "print('docker' in sys.modules)" % (HERE, FILE_MODULES))
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["False"]
