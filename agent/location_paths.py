"""Reading back and turning off the modem's location paths beyond the GNSS engine (for the enforcer).

Which settings a modem has is learnt from its answers: the first read of a setting is sent alone, and a query
the modem rejects as unknown marks it *not present* (never "off": nothing was read back). Once the present
settings are known, all of them are read in one concatenated line, one round trip. A batch that fails (the modem
changed under us) falls back to single reads, which learn the settings again.

A setting the module applies only at its next restart (XTRA) and that was repaired in this boot is shown as "off
from the next restart": read back off, it still counts as off (GNSS itself is off and read back), but status
does not claim more than the module does.

A lookup (Wi-Fi scan, cell lookup) has no setting: its test form is read once, to learn whether the module has
it, and is left out of the periodic batch, since a module cannot gain or lose a command without a reboot. Its
results come as URCs, so it is "watched" only while ``AT+QURCCFG="urcport"`` sends URCs to the port the agent
holds; otherwise status says where they go instead.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.at import Command, Response
from agent.errors import CommandError
from agent.quectel import paths
from agent.quectel.paths import NOT_PRESENT, PathSpec, Value

Execute = Callable[[Command], Response]
PathValues = dict[str, Value]  # setting name -> value read back, or NOT_PRESENT
WATCHED = "watched (no off setting)"  # a lookup the module has: never sent by the agent, its results watched
OFF_AT_RESTART = "off from the next restart"  # repaired, but the module applies it only when it restarts


@dataclass(frozen=True, slots=True)
class PathReport:
    """The settings read back, and what had to be turned off (drift key -> value found)."""

    values: PathValues
    turned_off: dict[str, Value]


class LocationPaths:
    """Learns which settings a modem has, reads them back and turns the unsafe ones off. One caller at a time."""

    def __init__(self, specs: tuple[PathSpec, ...] = paths.PATHS) -> None:
        self._specs = specs
        self._present: dict[str, Value] = {}  # learnt present; a lookup keeps its one read here
        self._absent: set[str] = set()
        self._until_restart: set[str] = set()  # turned off in this boot, but applied only at the next restart

    def forget(self, *, restarted: bool = False) -> None:
        """The port was reopened, or the module restarted: learn its settings again. Only a restart seen
        (``RDY``) applies the settings that wait for one; a reopened port may be the same boot."""
        self._present.clear()
        self._absent.clear()
        if restarted:
            self._until_restart.clear()

    def _batched_specs(self) -> list[PathSpec]:
        return [spec for spec in self._specs if spec.name in self._present and not spec.lookup]

    def batch_reads(self) -> list[Command]:
        """The read-backs of the settings known to be present, for a caller's own batched line."""
        return [spec.read() for spec in self._batched_specs()]

    def values_from(self, responses: list[Response]) -> PathValues:
        """Parse the responses to :meth:`batch_reads` (split out of a batch), in the same order."""
        present = self._batched_specs()
        values: PathValues = {spec.name: spec.parse(response) for spec, response in zip(present, responses,
                                                                                        strict=True)}
        return self._with_remembered(values)

    def read(self, execute: Execute) -> PathValues:
        """Every setting's value now. Raises CommandError or TransportError when one cannot be read."""
        values: PathValues = {}
        present = self._batched_specs()
        if len(present) > 1:
            try:
                for run in paths.batches([spec.read() for spec in present]):
                    specs, present = present[:len(run)], present[len(run):]
                    for spec, response in zip(specs, paths.split_batch(execute(paths.batch(run)), run),
                                              strict=True):
                        values[spec.name] = spec.parse(response)
            except CommandError:
                self.forget()  # a setting went away: learn them again, one by one
                values = {}
        values = self._with_remembered(values)
        for spec in self._specs:
            if spec.name not in values:
                values[spec.name] = self._read_one(spec, execute)
        return values

    def _with_remembered(self, values: PathValues) -> PathValues:
        """Add what is not read again: lookups (present) and the settings this model lacks."""
        values.update({name: value for name, value in self._present.items()
                       if name not in values and self._spec(name).lookup})
        values.update({name: NOT_PRESENT for name in self._absent})
        return values

    def turn_off(self, execute: Execute, values: PathValues) -> PathReport:
        """Turn off every present setting whose value is unsafe, then read those back."""
        found: dict[str, Value] = {}
        for spec in self._specs:
            value = values[spec.name]
            if value == NOT_PRESENT or spec.off(value):
                continue
            found[spec.drift_key] = value
            if spec.turn_off is not None:
                execute(spec.turn_off(value))
                values[spec.name] = spec.parse(execute(spec.read()))
                if spec.at_restart:
                    self._until_restart.add(spec.name)
        return PathReport(values, found)

    def all_off(self, values: PathValues) -> bool:
        """True when every setting was read back off or is not present on this model."""
        return all(self.is_off(spec, values.get(spec.name)) for spec in self._specs)

    def labels(self, values: PathValues | None) -> dict[str, str]:
        """What status shows per path: ``off``, ``on``, a URC mode, ``not present``, a watched lookup, or
        ``unknown``. A path of several settings is off only when each of them is."""
        labels = {group: _label([(spec, None if values is None else values.get(spec.name))
                                 for spec in self._specs if spec.group == group])
                  for group in dict.fromkeys(spec.group for spec in self._specs)}
        for spec in self._specs:
            if spec.name in self._until_restart and labels[spec.group] == "off":
                labels[spec.group] = OFF_AT_RESTART
        urc_port = None if values is None else values.get(paths.URC_PORT)
        if isinstance(urc_port, str) and urc_port != NOT_PRESENT and urc_port not in paths.URC_PORTS_WATCHED:
            for group in set(paths.LOOKUP_URCS.values()) & set(labels):
                if labels[group] == WATCHED:
                    labels[group] = f"unwatched: results go to {urc_port}"
        return labels

    @staticmethod
    def is_off(spec: PathSpec, value: Value | None) -> bool:
        return value is not None and (value == NOT_PRESENT or spec.off(value))

    def _spec(self, name: str) -> PathSpec:
        return next(spec for spec in self._specs if spec.name == name)

    def _read_one(self, spec: PathSpec, execute: Execute) -> Value:
        try:
            value = spec.parse(execute(spec.read()))
        except CommandError as exc:
            if not paths.is_not_present(exc):
                raise
            self._absent.add(spec.name)
            self._present.pop(spec.name, None)
            return NOT_PRESENT
        self._present[spec.name] = value
        return value


def settings_view(values: PathValues | None) -> dict[str, Value | list[int | str]] | None:
    """Each setting as read back, for status's detail (tuples as lists, so JSON shows them as they are)."""
    if values is None:
        return None
    return {name: list(value) if isinstance(value, tuple) else value for name, value in values.items()}


def _label(members: list[tuple[PathSpec, Value | None]]) -> str:
    if any(value is None for _, value in members):
        return "unknown"
    present = [(spec, value) for spec, value in members if value != NOT_PRESENT]
    if not present:
        return NOT_PRESENT
    if all(spec.lookup for spec, _ in present):
        return WATCHED
    if len(members) == 1 and members[0][0].shows_value:
        return str(members[0][1])
    return "off" if all(spec.off(value) for spec, value in present if value is not None) else "on"
