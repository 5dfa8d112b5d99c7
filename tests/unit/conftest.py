"""Unit tests: no root, no daemons."""

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args
from module_runner import ModuleExit, ModuleFail, load_module


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
