"""Link rates (lab/labnet.py's tc_rate_bits): bits per second of a rate in tc's syntax, the one
reading of a rate for `lab/lab link` (its tbf burst), the benchmarks (bench/labclient.py
re-exports it: the link rate of each row) and the experiments (which refuse a link setting
it cannot read)."""

import ast
import os
import sys
from pathlib import Path

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "lab"))
sys.path.insert(0, ROOT)
import labnet  # noqa: E402
from labcore import LabError  # noqa: E402

from bench import labclient  # noqa: E402
from experiment import run  # noqa: E402


@pytest.mark.parametrize("rate, bits", [
    ("20mbit", 20_000_000),
    ("100mbit", 100_000_000),
    ("1gbit", 1_000_000_000),
    ("500kbit", 500_000),
    ("512kbit", 512_000),
    ("2.5mbit", 2_500_000),
    ("100Mbit", 100_000_000),
    ("1tbit", 10 ** 12),
    ("8000bit", 8000),
    ("1kibit", 1024),
    ("1mibit", 1 << 20),
    ("1gibit", 1 << 30),
    # tc's bps units are bytes per second
    ("1000bps", 8000),
    ("125kbps", 1_000_000),
    ("12.5mbps", 100_000_000),
    ("1gbps", 8_000_000_000),
])
def test_bits_per_second(rate, bits):
    assert labnet.tc_rate_bits(rate) == bits


@pytest.mark.parametrize("rate", ["fast", "", "mbit", "100 furlongs", "-5mbit", "100mbit/s"])
def test_a_bad_rate_is_a_lab_error_and_a_value_error(rate):
    with pytest.raises(LabError) as seen:
        labnet.tc_rate_bits(rate)
    assert isinstance(seen.value, ValueError)


def test_one_definition_for_the_lab_the_benchmarks_and_the_experiments():
    assert labclient.tc_rate_bits is labnet.tc_rate_bits
    assert run.tc_rate_bits is labnet.tc_rate_bits
    assert labclient.tc_rate_bits("20mbit") == 20e6
    sources = [Path(ROOT, "lab", "lab")] + [p for top in Path(ROOT).iterdir()
                                           if top.is_dir() and not top.name.startswith(".") and top.name != "reports"
                                           for p in top.rglob("*.py")]
    defined = [p.relative_to(ROOT).as_posix() for p in sources
               if any(isinstance(node, ast.FunctionDef) and node.name == "tc_rate_bits"
                      for node in ast.walk(ast.parse(p.read_text(errors="replace"))))]
    assert defined == ["lab/labnet.py"]


def test_experiment_link_settings():
    assert run.link_rate("unshaped") is None
    assert run.link_rate("100mbit") == "100mbit"
    with pytest.raises(ValueError):
        run.link_rate("fast")
    with pytest.raises(SystemExit):
        run.parse_args(["--links", "unshaped,fast"])
