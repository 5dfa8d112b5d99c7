#!/usr/bin/env python3
"""`make sanity`: ansible-test sanity on the built collection edge.migrate, offline.

ansible-test runs each sanity tool in a virtual environment of its own, which it bootstraps with
a get-pip.py downloaded from ci-files.testing.ansible.com and fills from PyPI. Here nothing is
downloaded: ansible-test runs with a HOME of its own (.venv/sanity-home, so the caller's ~/.ansible
and pip configuration are left alone) whose pip.conf installs only from .venv/wheelhouse (`make venv`
downloads tests/sanity/requirements.txt there), and whose get-pip cache holds a stand-in that
installs pip from that wheelhouse.

    build/sanity.py [ansible-test sanity options, e.g. --test pep8]
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from build_collection import NAME, NAMESPACE, ROOT, build  # noqa: E402

VENV_BIN = os.path.join(ROOT, ".venv", "bin")
WHEELHOUSE = os.path.join(ROOT, ".venv", "wheelhouse")
HOME = os.path.join(ROOT, ".venv", "sanity-home")
PYTHON_VERSION = "%d.%d" % sys.version_info[:2]
# Tests left out, each for a reason that is not a finding in the code.
SKIPPED = {
    # ansible-test's own boilerplate checks for ansible-core's code base, GPL headers; this
    # collection is Apache-2.0 and says so in galaxy.yml and LICENSE.
}

GET_PIP = '''"""Stand-in for get-pip.py (ansible-test's pip bootstrap): pip from a local wheel, no download."""
import glob
import runpy
import sys

WHEELHOUSE = %r
sys.path.insert(0, glob.glob(WHEELHOUSE + "/pip-*.whl")[0])
options = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.argv = ["pip", "install", "--no-index", "--find-links", WHEELHOUSE] + options
runpy.run_module("pip", run_name="__main__", alter_sys=True)
'''


def ansible_test_pins():
    """Every pin ansible-test's sanity requirement files name, and the pip version it bootstraps."""
    import ansible_test
    data = os.path.join(os.path.dirname(ansible_test.__file__), "_data", "requirements")
    pins = set()
    for file in os.listdir(data):
        if file.startswith("sanity.") and file.endswith(".txt"):
            with open(os.path.join(data, file)) as f:
                pins.update(line.strip() for line in f if re.match(r"^[A-Za-z0-9_.-]+==", line))
    from ansible_test._internal.host_configs import NativePythonConfig
    from ansible_test._internal.python_requirements import get_venv_packages
    pip = get_venv_packages(NativePythonConfig(version=PYTHON_VERSION, path=sys.executable))["pip"]
    return pins, pip


def wheel_missing(pin):
    name, version = pin.split("==")
    pattern = re.compile(r"^%s-%s[-.]" % (re.sub(r"[-_.]+", "[-_.]", name), re.escape(version)), re.I)
    return not any(pattern.match(f) for f in os.listdir(WHEELHOUSE))


def prepare_home():
    pins, pip = ansible_test_pins()
    if not os.path.isdir(WHEELHOUSE):
        raise SystemExit("no %s: run `make venv` first" % WHEELHOUSE)
    missing = sorted(p for p in pins | {"pip==" + pip} if wheel_missing(p))
    if missing:
        raise SystemExit("%s lacks %s (what this ansible-test pins): add them to tests/sanity/requirements.txt "
                         "and run `make venv`" % (WHEELHOUSE, ", ".join(missing)))
    os.makedirs(os.path.join(HOME, ".config", "pip"), exist_ok=True)
    with open(os.path.join(HOME, ".config", "pip", "pip.conf"), "w") as f:
        f.write("[global]\nno-index = true\nfind-links = %s\ndisable-pip-version-check = true\n" % WHEELHOUSE)
    cache = os.path.join(HOME, ".ansible", "test", "cache")
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, "get_pip_%s.py" % pip.replace(".", "_")), "w") as f:
        f.write(GET_PIP % WHEELHOUSE)


def main():
    prepare_home()
    # Outside the repository: inside a git work tree ansible-test takes its targets from
    # `git ls-files`, which does not list the built copy.
    tree = tempfile.mkdtemp(prefix="edge-migrate-sanity-")
    try:
        build(os.path.join(tree, "dist"), tree)
        sys.exit(run_ansible_test(os.path.join(tree, "ansible_collections", NAMESPACE, NAME)))
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def run_ansible_test(collection):
    env = dict(os.environ, HOME=HOME, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    for name in [n for n in env if n.startswith(("PIP_", "ANSIBLE_"))]:
        del env[name]
    command = [os.path.join(VENV_BIN, "ansible-test"), "sanity", "--python", PYTHON_VERSION, "--color", "no"]
    for test in SKIPPED:
        command += ["--skip-test", test]
    return subprocess.run(command + sys.argv[1:], cwd=collection, env=env).returncode


if __name__ == "__main__":
    main()
