"""Unit tests: no root, no daemons. The project's module_utils are made importable as
ansible.module_utils.* and its modules as plain Python modules, as Ansible does."""

import importlib.util
import json
import os
import sys

import ansible.module_utils
import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ansible.module_utils.__path__.append(os.path.join(ROOT, "module_utils"))
sys.path.insert(0, os.path.join(ROOT, "filter_plugins"))


class ModuleExit(Exception):
    def __init__(self, result):
        super().__init__(json.dumps(result, default=str))
        self.result = result


class ModuleFail(Exception):
    def __init__(self, result):
        super().__init__(json.dumps(result, default=str))
        self.result = result


def load_module(name):
    spec = importlib.util.spec_from_file_location("edge_lib_" + name, os.path.join(ROOT, "library", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def run_module(monkeypatch):
    """run_module(name, args) -> ('exit'|'fail', result) without leaving the test process."""
    def exit_json(self, **kwargs):
        raise ModuleExit(kwargs)

    def fail_json(self, msg, **kwargs):
        kwargs["msg"] = msg
        raise ModuleFail(kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def run(name, args):
        module = load_module(name)
        with patch_module_args(args):
            try:
                module.main()
            except ModuleExit as done:
                return "exit", done.result
            except ModuleFail as failed:
                return "fail", failed.result
            except SystemExit as exc:  # argument_spec errors end here after fail_json
                raise AssertionError("module exited without a result: %s" % exc)
        raise AssertionError("module returned without exit_json or fail_json")

    return run
