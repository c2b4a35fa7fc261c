"""Each package's public names are pinned: a name added to or dropped from a package's ``__init__`` is a change
of the interface other code (and integrators) import, and must be made here too, on purpose."""

from __future__ import annotations

import importlib
import types

import pytest

PUBLIC = {
    "agent.at": ["Command", "Connection", "Echo", "Event", "Final", "FinalKind", "KNOWN_PLAIN_URCS", "NEED_DATA",
                 "NeedData", "Prompt", "Response", "Stray", "Urc", "parse_final", "plus_prefix"],
    "agent.nmea": ["CaptureFilter", "DECODED_TYPES", "DEFAULT_MAX_SENTENCE_BYTES", "Decoded", "FixAssembler",
                   "FixDecoder", "Gga", "Gll", "Gns", "Gsa", "Gsv", "NEED_DATA", "NmeaReader", "Proprietary",
                   "ReaderCounters", "Rmc", "SatelliteInView", "Sentence", "Unknown", "Vtg", "Zda", "decode",
                   "nmea_checksum", "with_checksum"],
    "agent.ledger": ["EraseSummary", "Ledger", "LedgerConfig", "Record", "RecordRef", "TornTail", "Truncation",
                     "VerifyReport"],
    "agent.sim": ["ManualClock", "SimModem", "SimState", "forget", "install", "modem_for", "register",
                  "shared_modem", "unregister"],
    "agent.sinks": ["Backoff", "Sink", "open_sink"],
    # packages whose modules are the interface: their __init__ defines nothing
    "agent.privacy": [],
    "agent.quectel": [],
    "agent.rig": [],
    # the pytest plugin: fixtures, the marker's helpers and the hooks pytest calls
    "agent.testing": ["CtlResult", "HilTarget", "RunningDaemon", "SIM_SEED", "SIM_TTFF_S", "daemon_config",
                      "hil_sim_name", "hil_target", "privacy_daemon", "privacyctl", "pytest_configure",
                      "pytest_runtest_setup", "sim_modem", "skip_on_hardware", "wait_until"],
}


def public_names(module: types.ModuleType) -> list[str]:
    declared = getattr(module, "__all__", None)
    if declared is not None:
        return sorted(declared)
    return sorted(name for name, value in vars(module).items()
                  if not name.startswith("_") and not isinstance(value, types.ModuleType)
                  and getattr(value, "__module__", module.__name__) == module.__name__)


@pytest.mark.parametrize("package", sorted(PUBLIC))
def test_a_packages_public_names_are_pinned(package: str) -> None:
    module = importlib.import_module(package)
    assert public_names(module) == sorted(PUBLIC[package])
    assert all(hasattr(module, name) for name in PUBLIC[package])
