"""The iterative strategy's stop rule (library/edge_precopy.py)."""

import pytest
from module_runner import load_module

PARAMS = {"dirty_threshold": 1 << 20, "min_shrink": 0.1, "max_rounds": 4}


def rounds(*dirty):
    return [{"dirty_bytes": value} for value in dirty]


@pytest.mark.parametrize("dirty, reason", [
    ((300 << 20,), None),                             # first round: keep going
    ((512 << 10,), "threshold"),                      # little left to send
    ((10 << 20, 6 << 20), None),                      # shrinking by 40 %
    ((10 << 20, 9500 << 10), "not_shrinking"),        # 7 % smaller only
    ((10 << 20, 12 << 20), "not_shrinking"),          # growing: the service dirties faster than we send
    ((40 << 20, 20 << 20, 10 << 20, 5 << 20), "max_rounds"),
])
def test_stop_rule(dirty, reason):
    assert load_module("edge_precopy").stop_reason(rounds(*dirty), PARAMS) == reason
