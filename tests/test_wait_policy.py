"""The OpenMP wait policy the CLI sets before torch loads: passive only on a busy machine, and
never over the user's own choice."""
from __future__ import annotations

import os
import subprocess
import sys

from budgetnas.cli import wait_policy


def test_passive_only_when_other_work_holds_a_core():
    assert wait_policy(0.0, None) is None
    assert wait_policy(0.95, None) is None
    assert wait_policy(1.0, None) == "PASSIVE"
    assert wait_policy(3.7, None) == "PASSIVE"


def test_the_users_policy_is_never_replaced():
    assert wait_policy(5.0, "ACTIVE") is None
    assert wait_policy(0.0, "PASSIVE") is None


def test_the_policy_is_in_the_environment_before_torch_loads():
    """Run the CLI's entry in a child with a faked load average: the variable must be set by the
    time torch (and its OpenMP runtime) is imported."""
    code = ("import os, sys; os.getloadavg = lambda: ({load}, 0.0, 0.0); os.environ.pop('OMP_WAIT_POLICY', None)\n"
            "from budgetnas import cli; cli.quiet_openmp(); import torch\n"
            "print(os.environ.get('OMP_WAIT_POLICY', 'unset'))")
    for load, expected in ((2.5, "PASSIVE"), (0.1, "unset")):
        env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        out = subprocess.run([sys.executable, "-c", code.format(load=load)], capture_output=True, text=True,
                             env=env, timeout=120)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip().splitlines()[-1] == expected
