"""Location-path commands and replies, batched read-backs, and what "not present" means."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.at import Command, Final, Response
from agent.errors import CmeError, CommandError, RemoteProtocolError, UsageError
from agent.quectel import commands, paths
from agent.quectel.codes import GnssBusy, error_for


def ok(command: Command, *lines: str) -> Response:
    return Response(command, tuple(lines), Final("OK", None, "OK"))


def failed(command: Command, text: str) -> Response:
    kind = "CME" if text.startswith("+CME") else "ERROR"
    code = int(text.rsplit(":", 1)[1]) if kind == "CME" else None
    return Response(command, (), Final(kind, code, text))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("command", "text", "prefix"),
    [
        (paths.cgreg_read(), "AT+CGREG?", "+CGREG"),
        (paths.cgreg_set(1), "AT+CGREG=1", "+CGREG"),
        (paths.qgpsxtra_read(), "AT+QGPSXTRA?", "+QGPSXTRA"),
        (paths.qgpsxtra_set(False), "AT+QGPSXTRA=0", "+QGPSXTRA"),
        (paths.qgpssuplurl_read(), "AT+QGPSSUPLURL?", "+QGPSSUPLURL"),
        (paths.qgpssuplurl_set("NULL"), 'AT+QGPSSUPLURL="NULL"', "+QGPSSUPLURL"),
        (paths.qwifiscan_test(), "AT+QWIFISCAN=?", "+QWIFISCAN"),
        (paths.qagps_read(), "AT+QAGPS?", "+QAGPS"),
        (paths.qagps_set(False), "AT+QAGPS=0", "+QAGPS"),
        (paths.qlbscfg_test(), "AT+QLBSCFG=?", "+QLBSCFG"),
        (paths.qcellloc_test(), "AT+QCELLLOC=?", "+QCELLLOC"),
        (paths.lbsapn_set((3, 2, "internet"), ""), 'AT+QGPSCFG="lbsapn",3,2,""', "+QGPSCFG"),
    ],
)
def test_builders_write_the_exact_text(command: Command, text: str, prefix: str) -> None:
    assert (command.text, command.prefix) == (text, prefix)


@pytest.mark.parametrize("url", ["", 'a"b', "a;b", "x\r", "u" * 129, 5])
def test_a_supl_url_that_could_break_the_line_is_refused(url: object) -> None:
    with pytest.raises(UsageError):
        paths.qgpssuplurl_set(url)  # type: ignore[arg-type]


@pytest.mark.parametrize(("current", "apn"), [((1, 0), ""), ((1, "0", ""), ""), ("1,0,", ""), ((1, 0, ""), 'a"b'),
                                              ((1, 0, ""), "a;b"), ((1, 0, ""), "x" * 100)])
def test_lbsapn_refuses_what_was_not_read_back_or_could_break_the_line(current: object, apn: str) -> None:
    with pytest.raises(UsageError):
        paths.lbsapn_set(current, apn)  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [3, -1, True, "1"])
def test_cgreg_and_xtra_refuse_bad_values(bad: object) -> None:
    with pytest.raises(UsageError):
        paths.cgreg_set(bad)  # type: ignore[arg-type]
    if not isinstance(bad, bool):
        with pytest.raises(UsageError):
            paths.qgpsxtra_set(bad)  # type: ignore[arg-type]


def test_batch_joins_single_commands_and_refuses_the_rest() -> None:
    parts = [commands.qgps_read(), commands.qgpscfg_read("autogps"), paths.qgpsxtra_read()]
    line = paths.batch(parts)
    assert line.text == 'AT+QGPS?;+QGPSCFG="autogps";+QGPSXTRA?'
    assert line.accepted_prefixes == {"+QGPS", "+QGPSCFG", "+QGPSXTRA"}
    with pytest.raises(UsageError):
        paths.batch([])
    with pytest.raises(UsageError):
        paths.batch([commands.ati()])  # a basic command cannot be joined after another
    with pytest.raises(UsageError):
        paths.batch([line, paths.qgpsxtra_read()])


def test_split_batch_gives_each_part_its_lines_by_prefix_and_cfg_key() -> None:
    parts = [commands.qgps_read(), commands.qgpscfg_read("autogps"), commands.qgpscfg_read("outport"),
             paths.qgpsxtra_read(), commands.creg_read()]
    reply = ok(paths.batch(parts), '+QGPSCFG: "outport","none"', "+QGPSXTRA: 0", "+QGPS: 0",
               '+QGPSCFG: "autogps",0', "+CREG: 1,1")  # any order (transcript 4.9)
    split = paths.split_batch(reply, parts)
    assert [r.lines for r in split] == [("+QGPS: 0",), ('+QGPSCFG: "autogps",0',), ('+QGPSCFG: "outport","none"',),
                                        ("+QGPSXTRA: 0",), ("+CREG: 1,1",)]
    assert paths.parse_qgpsxtra(split[3]) == 0


def test_split_batch_raises_the_batch_error() -> None:
    parts = [commands.qgps_read(), paths.qgpsxtra_read()]
    with pytest.raises(CommandError):
        paths.split_batch(failed(paths.batch(parts), "ERROR"), parts)


def test_parsers_read_values_and_refuse_malformed_replies() -> None:
    assert paths.parse_qgpsxtra(ok(paths.qgpsxtra_read(), "+QGPSXTRA: 1")) == 1
    assert paths.parse_qgpssuplurl(ok(paths.qgpssuplurl_read(), '+QGPSSUPLURL: "NULL"')) == "NULL"
    cfg = commands.qgpscfg_read("agnssprotocol")
    assert paths.parse_cfg_int(ok(cfg, '+QGPSCFG: "agnssprotocol",7')) == 7
    for bad in ("+QGPSXTRA: 2", "+QGPSXTRA: x", "+QGPS: 1"):
        with pytest.raises(RemoteProtocolError):
            paths.parse_qgpsxtra(ok(paths.qgpsxtra_read(), bad))
    with pytest.raises(RemoteProtocolError):
        paths.parse_cfg_int(ok(cfg, '+QGPSCFG: "agnssprotocol","x"'))
    assert paths.parse_present(ok(paths.qwifiscan_test(), "+QWIFISCAN: (4000-255000)")) == "present"
    assert paths.parse_qagps(ok(paths.qagps_read(), "+QAGPS: 1")) == 1
    urc = paths.qurccfg_urcport_read()
    assert urc.text == 'AT+QURCCFG="urcport"'
    assert paths.parse_urcport(ok(urc, '+QURCCFG: "urcport","USBAT"')) == "usbat"
    for bad in ('+QURCCFG: "urcport"', '+QURCCFG: "other","all"', '+QURCCFG: "urcport",""'):
        with pytest.raises(RemoteProtocolError):
            paths.parse_urcport(ok(urc, bad))
    agnss = commands.qgpscfg_read("agnssprotocol")
    assert paths.parse_agnssprotocol(ok(agnss, '+QGPSCFG: "agnssprotocol",3,1287')) == (3, 1287)
    for bad in ('+QGPSCFG: "agnssprotocol",3', '+QGPSCFG: "agnssprotocol",256,0', '+QGPSCFG: "agnssprotocol",1,"x"'):
        with pytest.raises(RemoteProtocolError):
            paths.parse_agnssprotocol(ok(agnss, bad))
    apn = commands.qgpscfg_read("lbsapn")
    assert paths.parse_lbsapn(ok(apn, '+QGPSCFG: "lbsapn",1,0,"internet"')) == (1, 0, "internet")
    assert paths.parse_lbsapn(ok(apn, '+QGPSCFG: "lbsapn",1,0')) == (1, 0, "")  # no APN set: none shown
    for bad in ('+QGPSCFG: "lbsapn",1', '+QGPSCFG: "lbsapn","a",0,""', '+QGPSCFG: "lbsapn",1,0,"",9'):
        with pytest.raises(RemoteProtocolError):
            paths.parse_lbsapn(ok(apn, bad))


@pytest.mark.parametrize(("text", "absent"), [
    ("ERROR", True), ("+CME ERROR: 4", True), ("+CME ERROR: 501", True), ("+CME ERROR: 502", True),
    ("+CME ERROR: 503", False), ("+CME ERROR: 14", False), ("+CME ERROR: 505", False),
])
def test_only_unknown_or_unsupported_means_not_present(text: str, absent: bool) -> None:
    error = error_for(failed(paths.qgpsxtra_read(), text))
    assert paths.is_not_present(error) is absent


def test_a_busy_modem_is_not_a_missing_path() -> None:
    busy = error_for(failed(paths.qgpsxtra_read(), "+CME ERROR: 503"))
    assert isinstance(busy, GnssBusy) and isinstance(busy, CmeError) and not paths.is_not_present(busy)


SAFE_REPLIES = {"cell-urc-creg": "+CREG: 1,1", "cell-urc-cereg": "+CEREG: 0,1", "cell-urc-cgreg": "+CGREG: 1,1",
                "xtra": "+QGPSXTRA: 0", "agps": "+QAGPS: 0", "supl-url": '+QGPSSUPLURL: "NULL"',
                "supl-apn": '+QGPSCFG: "lbsapn",1,0,""', "ni-plane": '+QGPSCFG: "plane",1',
                "ni-posmode": '+QGPSCFG: "agpsposmode",1', "ni-protocols": '+QGPSCFG: "agnssprotocol",0,0'}
UNSAFE_REPLIES = {"cell-urc-creg": '+CREG: 2,1,"2D0D","1A2B3C4",7', "cell-urc-cereg": "+CEREG: 4,1",
                  "cell-urc-cgreg": '+CGREG: 2,1,"2D0D","1A2B3C4"', "xtra": "+QGPSXTRA: 1", "agps": "+QAGPS: 1",
                  "supl-url": '+QGPSSUPLURL: "supl.example.net:7275"',
                  "supl-apn": '+QGPSCFG: "lbsapn",1,3,"internet"', "ni-plane": '+QGPSCFG: "plane",2',
                  "ni-posmode": '+QGPSCFG: "agpsposmode",4294967295',
                  "ni-protocols": '+QGPSCFG: "agnssprotocol",0,4'}


def test_every_setting_with_a_repair_is_told_off_from_on_and_the_rest_never_turn_unsafe() -> None:
    with_repair = {spec.name for spec in paths.PATHS if spec.turn_off is not None}
    assert with_repair == set(SAFE_REPLIES) == set(UNSAFE_REPLIES)
    for spec in paths.PATHS:
        if spec.turn_off is None:  # a version or a lookup: nothing about it to switch off
            assert spec.off(2) and spec.off("present")


@pytest.mark.parametrize("spec", [spec for spec in paths.PATHS if spec.turn_off is not None], ids=lambda s: s.name)
def test_each_path_tells_off_from_on_and_its_repair_targets_it(spec: paths.PathSpec) -> None:
    unsafe = spec.parse(ok(spec.read(), UNSAFE_REPLIES[spec.name]))
    assert spec.off(spec.parse(ok(spec.read(), SAFE_REPLIES[spec.name])))
    assert not spec.off(unsafe)
    assert spec.turn_off is not None
    repair = spec.turn_off(unsafe)
    assert repair.text.startswith("AT+") and repair.prefix == spec.read().prefix and "=" in repair.text


def test_the_control_plane_and_every_assisted_mode_are_unsafe() -> None:
    plane, posmode = (next(spec for spec in paths.PATHS if spec.name == name) for name in ("ni-plane", "ni-posmode"))
    assert [plane.off(value) for value in (0, 1, 2)] == [True, True, False]
    assert posmode.off(0) and posmode.off(1)
    assert not any(posmode.off(1 | 1 << bit) for bit in range(1, 32))  # any assisted mode bit


def test_each_group_is_named_once_in_status_order() -> None:
    from agent.location_paths import LocationPaths

    assert tuple(LocationPaths().labels(None)) == ("cell-urc-creg", "cell-urc-cereg", "cell-urc-cgreg", "xtra",
                                                   "agps", "supl", "ni-positioning", "urc-port", "wifi-scan",
                                                   "cell-lookup")
    assert set(paths.LOOKUP_URCS.values()) == {spec.group for spec in paths.PATHS if spec.lookup}


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.sampled_from(["autogps", "outport", "agnssprotocol", "lbsapn", "plane", "agnssjammingurcmode"]),
                     max_size=30),
       limit=st.integers(min_value=20, max_value=300))
def test_batches_keep_order_and_each_line_within_the_limit(keys: list[str], limit: int) -> None:
    parts = [commands.qgpscfg_read(key) for key in keys]
    runs = paths.batches(parts, limit)
    assert [part for run in runs for part in run] == parts
    for run in runs:
        assert len(run) == 1 or len(paths.batch(run).text) <= limit
    assert all(len(paths.batch(a + b[:1]).text) > limit for a, b in itertools.pairwise(runs))


_KEYS = st.sampled_from(["autogps", "outport", "agnssprotocol", "nmeasrc", "plane"])


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(_KEYS, min_size=1, max_size=5, unique=True), order=st.randoms(use_true_random=False))
def test_split_batch_finds_each_keys_line_in_any_order(keys: list[str], order: object) -> None:
    parts = [commands.qgpscfg_read(key) for key in keys] + [paths.qgpsxtra_read()]
    lines = [f'+QGPSCFG: "{key}",{index}' for index, key in enumerate(keys)] + ["+QGPSXTRA: 1"]
    order.shuffle(lines)  # type: ignore[attr-defined]
    split = paths.split_batch(ok(paths.batch(parts), *lines), parts)
    assert [paths.parse_cfg_int(response) for response in split[:-1]] == list(range(len(keys)))
    assert paths.parse_qgpsxtra(split[-1]) == 1
