"""Lookups a program can ask the simulated module for, and the ASR assistance switch (reference 1.7, 3).

A Wi-Fi scan (``AT+QWIFISCAN``) and a cell lookup (``AT+QLBS``) answer ``OK`` at once; their results come later
as URCs, through the same path as every other URC (both AT ports). The access points around the device are
fixed by the seed, so a test (or a leak check) knows every BSSID a scan can reveal. Counters of the requests
and the ``AT+QLBSCFG`` / ``AT+QAGPS`` settings live here; like the ``AT+QGPSCFG`` store they survive a reset
(U), while a pending result dies with the reset, as the events of an earlier life do.
"""

from __future__ import annotations

from agent.sim.identity import AccessPoint
from agent.sim.power import PowerAndBoot

WIFI_SCAN_S = 2.0  # (U) how long a scan takes before its results arrive
LBS_S = 1.0  # (U) how long Quectel's server takes to answer a cell lookup
LBS_ACCURACY_M = 550  # (U) the accuracy a cell lookup claims
LBS_DEFAULTS = {"token": "", "server": "www.queclocator.com"}  # (U) no token until one is configured
_WIFI_DONE = "wifi_scan_done"
_LBS_DONE = "lbs_done"


class Lookups(PowerAndBoot):
    """Wi-Fi scans, cell lookups and ``AT+QAGPS`` on top of the module's life cycle."""

    _access_points: tuple[AccessPoint, ...]
    _wifi_scans: int
    _lbs_lookups: int
    _lbs_cfg: dict[str, str]
    _agps: int

    def _init_lookups(self, access_points: tuple[AccessPoint, ...], agps: int) -> None:
        self._access_points = access_points
        self._wifi_scans = 0
        self._lbs_lookups = 0
        self._lbs_cfg = dict(LBS_DEFAULTS)
        self._agps = agps

    @property
    def wifi_access_points(self) -> tuple[AccessPoint, ...]:
        """The access points a scan finds, strongest first; the same for every model and scan of one seed."""
        return self._access_points

    # ------------------------------------------------------------------------------------------- requests

    def _start_wifi_scan(self, max_bssid: int) -> None:
        """Counted when accepted: a scan the module was asked for is a location lookup even if a reset loses
        its results. The limit rides in the event's kind, so a reset drops it with the event."""
        self._wifi_scans += 1
        self._schedule(WIFI_SCAN_S, f"{_WIFI_DONE}:{max_bssid}")

    def _start_lbs(self) -> None:
        self._lbs_lookups += 1
        self._schedule(LBS_S, _LBS_DONE)

    # --------------------------------------------------------------------------------------------- results

    def _handle_event(self, kind: str) -> None:
        name, _, argument = kind.partition(":")
        if name == _WIFI_DONE:
            self._wifi_results(int(argument))
        elif name == _LBS_DONE:
            self._lbs_result()
        else:
            super()._handle_event(kind)

    def _wifi_results(self, max_bssid: int) -> None:
        for point in self._access_points[:max_bssid]:
            self._urc(f'+QWIFISCAN: (-,-,{point.rssi},"{point.bssid}",{point.channel})')

    def _lbs_result(self) -> None:
        """Where the server puts the device: its true position now, with the latitude first (reference 3);
        ``+QLBS: 1`` (U) when the module has no network to ask through."""
        if not self._registered:
            self._urc("+QLBS: 1")
            return
        point = self._track.at(self._wall(self._now))
        self._urc(f"+QLBS: 0,{point.lat:.6f},{point.lon:.6f},{LBS_ACCURACY_M}")
