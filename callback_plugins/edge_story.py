"""Ansible's default output, except that a task waiting on purpose (an `until` loop: the
destination's pull, the restore's wait, a transfer in the background) says what it waits for
instead of printing `FAILED - RETRYING`, which reads as a failure in a healthy migration, and
how far a transfer has come when the task reports it (edge_sync_progress)."""

DOCUMENTATION = r"""
name: edge_story
type: stdout
short_description: the default output, with waits that do not read as failures
description:
  - Ansible's default stdout callback, except for the retries of a task with C(until), which
    print C(waiting [host] task (check N, up to M)) instead of C(FAILED - RETRYING) (a task
    that checks more often than once a second, one line a second), followed by the
    transfer's progress when the result has one (C(progress) with bytes, total_bytes,
    percent, rate, time_left, as edge_sync_progress returns it).
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
        if not starts_a_second(getattr(result._task, "delay", None), attempts):
            return
        self._display.display("waiting [%s] %s (check %d, up to %d)%s"
                              % (self.host_label(result), result.task_name or result._task, attempts, retries,
                                 describe_progress(result._result.get("progress"))))


def starts_a_second(delay, attempts):
    """Whether this check of a task retried every `delay` seconds is the first of a new second
    of waiting: a task that polls faster than once a second prints a line a second."""
    try:
        delay = float(delay)
    except (TypeError, ValueError):
        return True
    if delay <= 0 or delay >= 1 or attempts <= 1:
        return True
    return int(attempts * delay + 1e-9) > int((attempts - 1) * delay + 1e-9)


def describe_progress(progress):
    """': 33.6 of 268.4 MB (12%), 2.34MB/s, 0:01:20 left' from edge_sync_progress's figures
    (an edge's answer: shown only when the figures have the expected types and sizes)."""
    def number(key, limit):
        value = progress.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= limit else None

    def word(key):
        value = progress.get(key)
        if not isinstance(value, str) or len(value) > 20:
            return None
        letters = value.replace(".", "").replace(":", "").replace("/", "")
        return value if letters.isascii() and letters.isalnum() else None

    if not isinstance(progress, dict) or number("bytes", 1 << 60) is None:
        return ""
    total = number("total_bytes", 1 << 60)
    text = ": %.1f%s MB" % (progress["bytes"] / 1e6, " of %.1f" % (total / 1e6) if total is not None else "")
    percent = number("percent", 100)
    if percent is not None:
        text += " (%d%%)" % percent
    # At 100 % rsync prints the time the copy took where the time left was.
    done = progress.get("done") is True or percent == 100
    for key, form in (("rate", ", %s"), ("time_left", ", took %s" if done else ", %s left")):
        value = word(key)
        if value:
            text += form % value
    return text
