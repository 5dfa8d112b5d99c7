"""Runs the project's modules in-process for unit tests: its module_utils become importable as
ansible.module_utils.* (as Ansible arranges on a host) and its modules load as plain Python modules."""

import importlib.util
import json
import os
import sys

import ansible.module_utils

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
