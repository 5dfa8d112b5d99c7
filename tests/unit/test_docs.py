"""Every module's DOCUMENTATION matches its argument_spec and renders with ansible-doc;
playbooks, roles and Python pass the project's linters."""

import glob
import json
import os
import subprocess

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from module_runner import ROOT, load_module

MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "library", "*.py")))
BIN = os.path.join(ROOT, ".venv", "bin")


class SpecSeen(Exception):
    pass


def argument_spec(name, monkeypatch):
    def capture(self, argument_spec, **kwargs):
        raise SpecSeen(argument_spec)
    monkeypatch.setattr(basic.AnsibleModule, "__init__", capture)
    with patch_module_args({}), pytest.raises(SpecSeen) as seen:
        load_module(name).main()
    return seen.value.args[0]


def test_every_module_is_checked():
    assert len(MODULES) >= 9


@pytest.mark.parametrize("name", MODULES)
def test_documentation_matches_argument_spec(name, monkeypatch):
    doc = json.loads(subprocess.run([os.path.join(BIN, "ansible-doc"), "-M", os.path.join(ROOT, "library"), "-j", name],
                                    capture_output=True, text=True, check=True, cwd=ROOT).stdout)[name]
    options = doc["doc"]["options"]
    spec = argument_spec(name, monkeypatch)
    assert set(options) == set(spec), "documented and accepted options differ"
    for option, rules in spec.items():
        assert options[option].get("type", "str") == rules.get("type", "str"), option
        assert bool(options[option].get("required")) == bool(rules.get("required")), option
        if "default" in rules:
            assert options[option].get("default") == rules["default"], option
        if "choices" in rules:
            assert options[option].get("choices") == rules["choices"], option
    assert doc["examples"] and doc["return"]


def test_ansible_lint_production_profile():
    proc = subprocess.run([os.path.join(BIN, "ansible-lint"), "--profile", "production", "migrate.yml", "playbooks",
                           "roles"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_ruff():
    proc = subprocess.run([os.path.join(BIN, "ruff"), "check", ".", "lab/lab"], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 0, proc.stdout
