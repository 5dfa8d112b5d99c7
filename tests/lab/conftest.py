import pytest
from labtools import lab_hosts


@pytest.fixture(scope="module")
def lab():
    return lab_hosts()
