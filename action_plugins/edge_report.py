"""edge_report runs here, in the controller's own process: it writes the report on the
controller, and a module started on localhost for it would cost a Python start and the import
of Ansible's module code (about 0.7 s a migration)."""

import importlib.util
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

# module_utils/ is beside action_plugins/ in a checkout and beside plugins/action/ in the collection.
MODULE_UTILS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "module_utils")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        # Standard library only; not runpy: Ansible's collection loader answers for any path.
        spec = importlib.util.spec_from_file_location("edge_migrate_report",
                                                      os.path.join(MODULE_UTILS, "edge_report.py"))
        edge_report = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(edge_report)
        _validation, params = self.validate_argument_spec(argument_spec=edge_report.ARGUMENT_SPEC)
        try:
            result.update(edge_report.make_report(params, self._task.check_mode))
        except ValueError as exc:
            raise AnsibleActionFail(str(exc)) from exc
        return result
