"""Ansible's default output, except that a task waiting on purpose (an `until` loop: the
destination's pull, the restore's wait) says what it waits for instead of printing
`FAILED - RETRYING`, which reads as a failure in a healthy migration."""

DOCUMENTATION = r"""
name: edge_story
type: stdout
short_description: the default output, with waits that do not read as failures
description:
  - Ansible's default stdout callback, except for the retries of a task with C(until), which
    print C(waiting [host] task (check N, up to M)) instead of C(FAILED - RETRYING).
extends_documentation_fragment:
  - ansible.builtin.default_callback
  - ansible.builtin.result_format_callback
requirements:
  - set as stdout callback in ansible.cfg
"""

from ansible.plugins.callback.default import CallbackModule as DefaultCallback


class CallbackModule(DefaultCallback):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "edge_story"

    def v2_runner_retry(self, result):
        attempts = result._result.get("attempts", 0)
        retries = result._result.get("retries", 0)
        self._display.display("waiting [%s] %s (check %d, up to %d)"
                              % (self.host_label(result), result.task_name or result._task, attempts, retries))
