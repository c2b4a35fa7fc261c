"""The HIL rig kit: fault scenarios as TOML files, played end to end against the agent (``privacy-agent rig``).

- :mod:`agent.rig.scenario`: the format (pure): events, expectations, the timeline.
- :mod:`agent.rig.runner`: one scenario against a real daemon process on the simulator's ptys.
- :mod:`agent.rig.checks`: the expectations and soak figures, judged from what the runner observed (pure).
- :mod:`agent.rig.soak`: random scenarios for N minutes and the reliability table.
- :mod:`agent.rig.report`: text and JUnit XML reports.

See ``docs/rig.md``.
"""
