"""The collection edge.migrate as a user gets it: built by build/build_collection.py, installed with
ansible-galaxy into a private collections path; every module's documentation renders, the
playbooks and every task file of the roles load with the collection's names, the roles'
argument specs render."""

import glob
import json
import os
import re
import subprocess
import sys

import pytest
from module_runner import ROOT

BIN = os.path.join(ROOT, ".venv", "bin")
sys.path.insert(0, os.path.join(ROOT, "build"))
import build_collection  # noqa: E402

MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "library", "*.py")))
ROLES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "roles", "*")))


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(run, collection directory): run(tool, *args) runs an Ansible CLI with only the installed collection."""
    tmp = tmp_path_factory.mktemp("collection")
    tarball = build_collection.build(str(tmp / "dist"))
    assert os.path.basename(tarball) == "edge-migrate-%s.tar.gz" % galaxy_version()
    path = tmp / "collections"
    subprocess.run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "-p", str(path), tarball],
                   check=True, capture_output=True, text=True)
    # away from the repository: its ansible.cfg would add library/, roles/ and filter_plugins/
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    (tmp / "ansible.cfg").write_text("[defaults]\n")
    env.update(ANSIBLE_COLLECTIONS_PATH=str(path), ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(tmp / "ansible.cfg"))

    def run(tool, *args):
        return subprocess.run([os.path.join(BIN, tool), *args], cwd=str(tmp), env=env, capture_output=True,
                              text=True, timeout=120)

    return run, path / "ansible_collections" / "edge" / "migrate"


def galaxy_version():
    with open(os.path.join(ROOT, "build", "collection", "galaxy.yml")) as f:
        return re.search(r"^version:\s*(\S+)", f.read(), re.M).group(1)


def test_every_module_renders_with_ansible_doc(installed):
    run, _ = installed
    names = ["edge.migrate." + m for m in MODULES]
    proc = run("ansible-doc", "-t", "module", "--json", *names)
    assert proc.returncode == 0, proc.stderr[-3000:]
    docs = json.loads(proc.stdout)
    for name in names:
        assert docs[name]["doc"]["short_description"], name
    freeze = run("ansible-doc", "-t", "module", "edge.migrate.edge_freeze")
    assert freeze.returncode == 0 and "edge.migrate.edge_freeze" in freeze.stdout, freeze.stderr


def test_module_utils_imports_and_doc_fragments_use_the_collection(installed):
    _, collection = installed
    for path in glob.glob(str(collection / "plugins" / "*" / "*.py")):
        with open(path) as f:
            text = f.read()
        assert not re.search(r"ansible\.module_utils\.edge_|from ansible\.module_utils import edge_", text), path
        block = re.search(r"^extends_documentation_fragment:\n((?:\s+- .*\n)+)", text, re.M)
        if block:
            fragments = re.findall(r"- (\S+)", block.group(1))
            assert all(f.startswith(("edge.migrate.", "ansible.builtin.")) for f in fragments), path


def test_playbooks_load_by_their_collection_names(installed):
    run, _ = installed
    playbooks = sorted("edge.migrate." + os.path.basename(p)[:-4]
                       for p in glob.glob(os.path.join(ROOT, "playbooks", "*.yml")))
    assert "edge.migrate.migrate" in playbooks
    proc = run("ansible-playbook", "-i", "localhost,", "--syntax-check", *playbooks)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_every_task_file_of_the_roles_loads_with_short_module_names(installed, tmp_path):
    """import_role loads a task file when the play is parsed, so every module name in it must
    resolve: the collection's roles find their own modules by short name."""
    run, collection = installed
    tasks = [{"name": "Load %s %s" % (role, os.path.basename(f)),
              "ansible.builtin.import_role": {"name": "edge.migrate." + role, "tasks_from": os.path.basename(f)}}
             for role in ROLES for f in sorted(glob.glob(str(collection / "roles" / role / "tasks" / "*.yml")))]
    assert len(tasks) > len(ROLES)
    play = tmp_path / "load.yml"
    play.write_text(json.dumps([{"name": "Load", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    proc = run("ansible-playbook", "-i", "localhost,", "--syntax-check", str(play))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


REPORT_REQUEST = {"migration_id": "m", "service": "s", "source": "a", "destination": "b", "strategy": "delta",
                  "outcome": "migrated", "started_at": 1, "finished_at": 2}


def test_the_lock_owner_and_the_report_run_as_the_collections_actions_in_the_controllers_process(installed, tmp_path):
    run, _ = installed
    play, answer = tmp_path / "owner.yml", tmp_path / "owner.json"
    play.write_text(json.dumps([{"name": "Owner", "hosts": "localhost", "gather_facts": False, "tasks": [
        {"name": "Who", "edge.migrate.edge_lock_owner": {"controller": "ctl-c"}, "register": "who"},
        {"name": "Keep", "ansible.builtin.copy": {"content": "{{ who.owner | to_json }}", "dest": str(answer)}},
        {"name": "Report", "edge.migrate.edge_report": {"reports_dir": str(tmp_path / "reports"), "results": {},
                                                        "request": REPORT_REQUEST}}]}]))
    proc = run("ansible-playbook", "-vvv", "-i", "localhost,", "-c", "local", "-e",
               "ansible_python_interpreter=" + sys.executable, str(play))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    owner = json.loads(answer.read_text())
    assert owner["controller"] == "ctl-c" and owner["pid_start"] > 0 and owner["running"]
    # No module was sent and started for it (the copy task's module was).
    assert "AnsiballZ_copy.py" in proc.stdout and "AnsiballZ_edge_lock_owner" not in proc.stdout
    assert "AnsiballZ_edge_report" not in proc.stdout and (tmp_path / "reports" / "migrations.csv").exists()


def test_filters_are_called_by_their_collection_names(installed):
    run, collection = installed
    listed = json.loads(run("ansible-doc", "-t", "filter", "-l", "--json", "edge.migrate").stdout)
    filters = {name.split(".")[-1] for name in listed}
    assert filters == build_collection.filter_names()
    used = set()
    yaml_files = (glob.glob(str(collection / "roles" / "*" / "*" / "*.yml"))
                  + glob.glob(str(collection / "playbooks" / "*.yml")))
    for path in yaml_files:
        with open(path) as f:
            text = f.read()
        used.update(re.findall(r"edge\.migrate\.(\w+)", text))
        short = re.findall(r"\|\s*(%s)\b" % "|".join(filters), text)
        assert not short, "%s calls %s without the collection's name" % (path, short)
    assert used & filters


def test_every_role_has_argument_specs_that_render(installed):
    run, _ = installed
    proc = run("ansible-doc", "-t", "role", "--json", *("edge.migrate." + role for role in ROLES))
    assert proc.returncode == 0, proc.stderr[-2000:]
    docs = json.loads(proc.stdout)
    for role in ROLES:
        entry_points = docs["edge.migrate." + role]["entry_points"]
        assert "main" in entry_points or role == "migration", role
        for name, spec in entry_points.items():
            assert spec.get("short_description"), (role, name)


def test_the_execution_environment_gets_the_collection_and_its_requirements(installed):
    import yaml
    _run, collection = installed
    meta = yaml.safe_load((collection / "meta" / "execution-environment.yml").read_text())
    python = (collection / meta["dependencies"]["python"]).read_text()
    assert re.search(r"^docker\b", python, re.M) and re.search(r"^jinja2\b", python, re.M)
    assert "openssh-client" in (collection / meta["dependencies"]["system"]).read_text()
    with open(os.path.join(ROOT, "execution-environment.yml")) as handle:
        ee = yaml.safe_load(handle)
    tarball = "edge-migrate-%s.tar.gz" % galaxy_version()
    assert ee["additional_build_files"][0]["src"] == "dist/" + tarball
    assert ee["dependencies"]["galaxy"]["collections"][0]["name"].endswith("/" + tarball)
    with open(os.path.join(ROOT, "requirements.txt")) as handle:
        pins = dict(line.strip().split("==") for line in handle if "==" in line)
    for package in ("ansible_core", "ansible_runner"):
        name, version = ee["dependencies"][package]["package_pip"].split("==")
        assert pins[name] == version, "execution-environment.yml pins %s %s, requirements.txt %s" % (
            name, version, pins.get(name))
