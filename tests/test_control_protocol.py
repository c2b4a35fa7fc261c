"""The control protocol's pure core: request validation, authorisation, reply encoding and decoding."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import errors
from agent.control import (
    MUTATING_OPS,
    OPS,
    READ_OPS,
    Peer,
    Request,
    authorize,
    decode_reply,
    encode_error,
    encode_result,
    error_from_reply,
    parse_request,
    parse_status_groups,
)
from agent.errors import AgentError, ControlError, PermissionDenied, UsageError

SERVER_UID = 999
GROUP_GID = 4242


def line(message: Any) -> bytes:
    return json.dumps(message).encode()


# -- parse_request: the good ones ----------------------------------------------------------------------

@pytest.mark.parametrize("op", sorted(READ_OPS | {"identity.reset"}))
def test_ops_without_arguments_parse(op: str) -> None:
    assert parse_request(line({"v": 1, "op": op})) == Request(op=op, args={})
    assert parse_request(line({"v": 1, "op": op, "args": {}})).args == {}
    assert parse_request(line({"v": 1, "op": op, "args": None})).args == {}


@pytest.mark.parametrize("op", ["location.on", "location.off"])
@pytest.mark.parametrize("wait", [0, 0.5, 10, 60])
def test_location_switch_takes_a_bounded_wait(op: str, wait: float) -> None:
    request = parse_request(line({"v": 1, "op": op, "args": {"wait_s": wait}}))
    assert request.op == op
    assert request.args == {"wait_s": float(wait)}
    assert isinstance(request.args["wait_s"], float)


def test_wait_is_optional_so_the_agent_applies_its_configured_default() -> None:
    assert parse_request(line({"v": 1, "op": "location.off"})).args == {}


def test_arguments_of_the_other_mutating_ops() -> None:
    grant = {"v": 1, "op": "consent.grant", "args": {"purpose": "fleet.tracking"}}
    assert parse_request(line(grant)).args == {"purpose": "fleet.tracking"}
    assert parse_request(line({"v": 1, "op": "export", "args": {"out": "/tmp/x.export"}})).args == {
        "out": "/tmp/x.export"}
    assert parse_request(line({"v": 1, "op": "erase", "args": {"all": True}})).args == {"all": True}


def test_trailing_carriage_return_and_spaces_are_json_whitespace() -> None:
    assert parse_request(b' {"v": 1, "op": "status"} \r').op == "status"


# -- parse_request: the bad ones -----------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "fragment"), [
    (b"\xff\xfe{}", "not UTF-8"),
    (b"", "not valid JSON"),
    (b"status", "not valid JSON"),
    (b"{\"v\": 1, \"op\": \"status\"", "not valid JSON"),
    (b"[" * 100_000, "nested too deeply"),
    (b'{"v": 1, "op": "location.off", "args": {"wait_s": 1' + b"0" * 5000 + b"}}", "number too long"),
    (b"[1, 2]", "JSON object"),
    (b"\"status\"", "JSON object"),
    (b"null", "JSON object"),
])
def test_framing_and_json_errors(raw: bytes, fragment: str) -> None:
    with pytest.raises(ControlError, match=fragment):
        parse_request(raw)


@pytest.mark.parametrize(("message", "error", "fragment"), [
    ({"op": "status"}, ControlError, "version must be 1"),
    ({"v": 2, "op": "status"}, ControlError, "version must be 1"),
    ({"v": "1", "op": "status"}, ControlError, "version must be 1"),
    ({"v": True, "op": "status"}, ControlError, "version must be 1"),
    ({"v": 1.0, "op": "status"}, ControlError, "version must be 1"),
    ({"v": 1}, ControlError, "'op' must be a string"),
    ({"v": 1, "op": 7}, ControlError, "'op' must be a string"),
    ({"v": 1, "op": "status", "user": "root"}, ControlError, "unknown fields: user"),
    ({"v": 1, "op": "reboot"}, UsageError, "unknown op 'reboot'"),
    ({"v": 1, "op": "status", "args": []}, UsageError, "'args' must be a JSON object"),
    ({"v": 1, "op": "status", "args": {"x": 1}}, UsageError, "does not take: x"),
    ({"v": 1, "op": "location.off", "args": {"wait_s": -1}}, UsageError, "between 0 and 60"),
    ({"v": 1, "op": "location.off", "args": {"wait_s": 61}}, UsageError, "between 0 and 60"),
    ({"v": 1, "op": "location.off", "args": {"wait_s": 1e308}}, UsageError, "between 0 and 60"),
    ({"v": 1, "op": "location.off", "args": {"wait_s": 10**400}}, UsageError, "between 0 and 60"),
    ({"v": 1, "op": "location.off", "args": {"wait_s": -(10**400)}}, UsageError, "between 0 and 60"),
    ({"v": 1, "op": "location.off", "args": {"wait_s": "10"}}, UsageError, "number of seconds"),
    ({"v": 1, "op": "location.off", "args": {"wait_s": True}}, UsageError, "number of seconds"),
    ({"v": 1, "op": "location.off", "args": {"wait_s": None}}, UsageError, "number of seconds"),
    ({"v": 1, "op": "location.on", "args": {"uid": 0}}, UsageError, "does not take: uid"),
    ({"v": 1, "op": "consent.grant"}, UsageError, "needs: purpose"),
    ({"v": 1, "op": "consent.withdraw", "args": {}}, UsageError, "needs: purpose"),
    ({"v": 1, "op": "export"}, UsageError, "needs: out"),
    ({"v": 1, "op": "consent.grant", "args": {"purpose": ""}}, UsageError, "purpose name"),
    ({"v": 1, "op": "consent.grant", "args": {"purpose": "Ads"}}, UsageError, "purpose name"),
    ({"v": 1, "op": "consent.grant", "args": {"purpose": "a" * 65}}, UsageError, "purpose name"),
    ({"v": 1, "op": "consent.withdraw", "args": {"purpose": ["x"]}}, UsageError, "purpose name"),
    ({"v": 1, "op": "export", "args": {"out": "relative/path"}}, UsageError, "absolute path"),
    ({"v": 1, "op": "export", "args": {"out": ""}}, UsageError, "non-empty path"),
    ({"v": 1, "op": "export", "args": {"out": "/tmp/a\u0000b"}}, UsageError, "non-empty path"),
    ({"v": 1, "op": "erase", "args": {"all": 1}}, UsageError, "true or false"),
])
def test_request_errors_name_the_problem(message: dict[str, Any], error: type[AgentError],
                                         fragment: str) -> None:
    with pytest.raises(error, match=fragment):
        parse_request(line(message))


def test_nan_wait_is_refused() -> None:
    with pytest.raises(UsageError, match="number of seconds"):
        parse_request(b'{"v": 1, "op": "location.off", "args": {"wait_s": NaN}}')


def test_echoed_names_are_clipped_and_printable() -> None:
    with pytest.raises(UsageError) as caught:
        parse_request(line({"v": 1, "op": "\x1b[31m" + "x" * 500}))
    assert "\x1b" not in str(caught.value)
    assert len(str(caught.value)) < 80


@given(st.binary(max_size=512))
def test_any_bytes_parse_or_raise_an_agent_error(raw: bytes) -> None:
    try:
        request = parse_request(raw)
    except AgentError as exc:
        assert isinstance(exc, ControlError | UsageError)
    else:
        assert request.op in OPS


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10,
)


_arg_names = st.sampled_from(["wait_s", "purpose", "out", "all", "x"])


@given(st.fixed_dictionaries(
    {"v": st.sampled_from([1, 1, 2, "1"]), "op": st.sampled_from(sorted(OPS)) | st.text()},
    optional={"args": _json | st.dictionaries(_arg_names, _json, max_size=3)},
))
def test_any_request_shaped_object_parses_or_raises_an_agent_error(message: dict[str, Any]) -> None:
    try:
        request = parse_request(line(message))
    except AgentError as exc:
        assert isinstance(exc, ControlError | UsageError)
    else:
        assert request.op == message["op"]
        assert message["v"] == 1


# -- authorisation -------------------------------------------------------------------------------------

def test_the_mutating_and_read_ops_split_every_op() -> None:
    assert MUTATING_OPS.isdisjoint(READ_OPS)
    assert {"location.on", "location.off", "erase", "export", "identity.reset"} <= MUTATING_OPS
    assert {"status", "location.status", "incidents", "log.verify", "policy.show", "consent.list"} == READ_OPS


STRANGER = Peer(pid=10, uid=1234, gid=1234, groups=(1234, 20))


@pytest.mark.parametrize("op", sorted(READ_OPS))
def test_anyone_who_can_connect_may_read(op: str) -> None:
    authorize(Request(op), STRANGER, group_gid=None, server_uid=SERVER_UID)
    authorize(Request(op), STRANGER, group_gid=GROUP_GID, server_uid=SERVER_UID)


@pytest.mark.parametrize("op", sorted(MUTATING_OPS))
def test_a_stranger_may_not_change_state(op: str) -> None:
    with pytest.raises(PermissionDenied, match="only root or members") as caught:
        authorize(Request(op), STRANGER, group_gid=GROUP_GID, server_uid=SERVER_UID)
    assert caught.value.details == {"uid": 1234}
    with pytest.raises(PermissionDenied, match="only root may"):
        authorize(Request(op), STRANGER, group_gid=None, server_uid=SERVER_UID)


@pytest.mark.parametrize("peer", [
    Peer(pid=1, uid=0, gid=0),
    Peer(pid=1, uid=SERVER_UID, gid=SERVER_UID),
    Peer(pid=1, uid=1234, gid=GROUP_GID),
    Peer(pid=1, uid=1234, gid=1234, groups=(5, GROUP_GID)),
])
def test_root_the_agents_own_user_and_the_group_may_change_state(peer: Peer) -> None:
    authorize(Request("location.on"), peer, group_gid=GROUP_GID, server_uid=SERVER_UID)


def test_group_membership_counts_only_when_a_group_is_configured() -> None:
    member = Peer(pid=1, uid=1234, gid=GROUP_GID)
    with pytest.raises(PermissionDenied):
        authorize(Request("location.off"), member, group_gid=None, server_uid=SERVER_UID)


def test_status_groups_line_of_proc() -> None:
    text = "Name:\tpython3\nUid:\t0\t0\t0\t0\nGroups:\t4 20 27 \nNgid:\t0\n"
    assert parse_status_groups(text) == (4, 20, 27)
    assert parse_status_groups("Groups:\t\n") == ()
    assert parse_status_groups("Name:\tx\n") == ()


# -- replies -------------------------------------------------------------------------------------------

def test_a_result_round_trips() -> None:
    result = {"desired": "off", "observed": {"gnss": "off", "autogps": 0, "outport": None}, "name": "é"}
    raw = encode_result(result)
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    assert decode_reply(raw.rstrip(b"\n")) == result


def test_results_that_are_not_json_are_refused_when_encoding() -> None:
    with pytest.raises(ValueError):
        encode_result({"x": float("nan")})
    with pytest.raises(TypeError):
        encode_result({"x": object()})


@pytest.mark.parametrize("error", [
    PermissionDenied("no"), UsageError("bad"), errors.CmeError("modem said no", command="AT+QGPS", code=505),
    errors.ConsentRequired("consent needed"), ControlError("busy"), errors.LeakDetected("leak"),
])
def test_an_error_reply_is_raised_again_as_the_same_kind(error: AgentError) -> None:
    raw = encode_error(error)
    reply = json.loads(raw)
    assert reply == {"ok": False, "error": {"kind": type(error).__name__, "message": str(error)}}
    with pytest.raises(type(error)) as caught:
        decode_reply(raw)
    assert type(caught.value) is type(error)
    assert caught.value.message == str(error)


@pytest.mark.parametrize("error", [
    {"kind": "SystemExit", "message": "m"},
    {"kind": "LogCorrupt", "message": "m"},
    {"kind": "ProtocolError", "message": "m"},
    {"kind": "__class__", "message": "m"},
    {"kind": 5, "message": "m"},
    {"message": "m"},
])
def test_unknown_or_unbuildable_kinds_become_control_errors(error: dict[str, Any]) -> None:
    rebuilt = error_from_reply(error)
    assert type(rebuilt) is ControlError
    assert rebuilt.message == "m"


@pytest.mark.parametrize("raw", [
    b"", b"nope", b"[]", b"{}", b'{"ok": "yes"}', b'{"ok": true}', b'{"ok": true, "result": 5}',
    b'{"ok": false}', b'{"ok": false, "error": 3}',
])
def test_malformed_replies_are_control_errors(raw: bytes) -> None:
    with pytest.raises(ControlError):
        decode_reply(raw)
