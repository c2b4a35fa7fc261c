"""The host switch keeps the on-module guard's persisted switch in step (QuecPython modules)."""

from __future__ import annotations

from pathlib import Path

from agent.daemon import Agent
from agent.guard import GuardClient
from hil_tests.conftest import sim_config, wait_until
from hil_tests.test_shim_pty import GuardedModule, guarded_module  # noqa: F401  (fixture)


def guard_on(module: GuardedModule) -> bool:
    with GuardClient(module.slave_path, timeout_s=3.0) as client:
        return bool(client.status()["on"])


def test_location_switch_reaches_the_guard(tmp_path: Path, sim_name: str,
                                           guarded_module: GuardedModule) -> None:  # noqa: F811
    agent = Agent(sim_config(tmp_path, sim_name, guard_port=guarded_module.slave_path))
    agent.start()
    try:
        assert wait_until(lambda: agent.supervisor.enforcer.enforced, 15)
        assert wait_until(lambda: (agent.supervisor.guard.describe()["in_step"]), 10)
        assert agent.supervisor.guard.version is not None
        assert guard_on(guarded_module) is False
        assert agent.supervisor.set_location(True, uid=0, wait_s=10)["verified"] is True
        assert wait_until(lambda: agent.supervisor.guard.describe()["in_step"], 10)
        assert guard_on(guarded_module) is True
        assert agent.supervisor.set_location(False, uid=0, wait_s=10)["verified"] is True
        assert guard_on(guarded_module) is False
        assert agent.supervisor.status()["guard"]["present"] is True
    finally:
        agent.stop()
