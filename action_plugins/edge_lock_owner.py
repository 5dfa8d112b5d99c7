"""edge_lock_owner runs here, in the controller's own process: what it reports is the
controller and its ansible-playbook process, and a module started on localhost would cost a
Python start and the import of Ansible's module code (half a second) to read a few /proc files."""

import importlib.util
import os

from ansible.plugins.action import ActionBase

# module_utils/ is beside action_plugins/ in a checkout and beside plugins/action/ in the collection.
MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        # The module's argument_spec, with its conversions (a number given as the name is one).
        _validation, params = self.validate_argument_spec(argument_spec=dict(controller=dict(type="str")))
        controller = params["controller"]
        # Standard library only; not runpy: Ansible's collection loader answers for any path.
        spec = importlib.util.spec_from_file_location("edge_migrate_lock", os.path.join(MODULE_UTILS, "edge_lock.py"))
        edge_lock = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(edge_lock)
        # From this process up: a worker forked from ansible-playbook has its command line.
        result.update(changed=False, owner=edge_lock.controller_identity(
            controller or None, pid=edge_lock.playbook_pid(os.getpid())))
        return result
