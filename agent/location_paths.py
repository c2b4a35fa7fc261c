"""Reading back and turning off the modem's location paths beyond the GNSS engine (for the enforcer).

Which paths a modem has is learnt from its answers: the first read of a path is sent alone, and a query the
modem rejects as unknown marks the path *not present* (never "off": nothing was read back). Once the present
paths are known, all of them are read in one concatenated line, one round trip. A batch that fails (the modem
changed under us) falls back to single reads, which learn the paths again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.at import Command, Response
from agent.errors import CommandError
from agent.quectel import paths
from agent.quectel.paths import NOT_PRESENT, PathSpec, Value

Execute = Callable[[Command], Response]
PathValues = dict[str, Value]  # path name -> value read back, or NOT_PRESENT


@dataclass(frozen=True, slots=True)
class PathReport:
    """The paths read back, and what had to be turned off (drift key -> value found)."""

    values: PathValues
    turned_off: dict[str, Value]


class LocationPaths:
    """Learns which paths a modem has, reads them back and turns the unsafe ones off. One caller at a time."""

    def __init__(self, specs: tuple[PathSpec, ...] = paths.PATHS) -> None:
        self._specs = specs
        self._present: set[str] = set()
        self._absent: set[str] = set()

    def forget(self) -> None:
        """Another modem, or the same one rebooted: learn its paths again."""
        self._present.clear()
        self._absent.clear()

    def batch_reads(self) -> list[Command]:
        """The read-backs of the paths known to be present, for a caller's own batched line."""
        return [spec.read() for spec in self._specs if spec.name in self._present]

    @property
    def learnt(self) -> bool:
        return all(spec.name in self._present or spec.name in self._absent for spec in self._specs)

    def values_from(self, responses: list[Response]) -> PathValues:
        """Parse the responses to :meth:`batch_reads` (split out of a batch), in the same order."""
        present = [spec for spec in self._specs if spec.name in self._present]
        values: PathValues = {spec.name: spec.parse(response) for spec, response in zip(present, responses,
                                                                                        strict=True)}
        values.update({name: NOT_PRESENT for name in self._absent})
        return values

    def read(self, execute: Execute) -> PathValues:
        """Every path's value now. Raises CommandError or TransportError when one cannot be read."""
        values: PathValues = {}
        present = [spec for spec in self._specs if spec.name in self._present]
        if len(present) > 1:
            try:
                parts = [spec.read() for spec in present]
                for spec, response in zip(present, paths.split_batch(execute(paths.batch(parts)), parts),
                                          strict=True):
                    values[spec.name] = spec.parse(response)
            except CommandError:
                self.forget()  # a path went away: learn them again, one by one
                present = []
        for spec in self._specs:
            if spec.name not in values:
                values[spec.name] = self._read_one(spec, execute)
        return values

    def turn_off(self, execute: Execute, values: PathValues) -> PathReport:
        """Turn off every present path whose value is unsafe, then read those back."""
        found: dict[str, Value] = {}
        for spec in self._specs:
            value = values[spec.name]
            if value == NOT_PRESENT or spec.off(value):
                continue
            found[spec.drift_key] = value
            repair = spec.turn_off
            if repair is not None:
                execute(repair())
                values[spec.name] = spec.parse(execute(spec.read()))
        return PathReport(values, found)

    def all_off(self, values: PathValues) -> bool:
        """True when every path was read back off or is not present on this model."""
        return all(self.is_off(spec, values.get(spec.name)) for spec in self._specs)

    def labels(self, values: PathValues | None) -> dict[str, str]:
        """What status shows per path: ``off``, ``on``, a URC mode, ``not present`` or ``unknown``."""
        return {spec.name: _label(spec, None if values is None else values.get(spec.name)) for spec in self._specs}

    @staticmethod
    def is_off(spec: PathSpec, value: Value | None) -> bool:
        return value is not None and (value == NOT_PRESENT or spec.off(value))

    def _read_one(self, spec: PathSpec, execute: Execute) -> Value:
        try:
            value = spec.parse(execute(spec.read()))
        except CommandError as exc:
            if not paths.is_not_present(exc):
                raise
            self._absent.add(spec.name)
            self._present.discard(spec.name)
            return NOT_PRESENT
        self._present.add(spec.name)
        return value


def _label(spec: PathSpec, value: Value | None) -> str:
    if value is None:
        return "unknown"
    if value == NOT_PRESENT:
        return NOT_PRESENT
    if spec.shows_value:
        return str(value)
    return "off" if spec.off(value) else "on"
