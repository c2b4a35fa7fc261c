"""The control protocol's pure core: request validation, authorisation, reply encoding and decoding."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import control_wire, errors
from agent.control_protocol import (
    MUTATING_OPS,
    OP_TABLE,
    OPS,
    READ_OPS,
    Peer,
    Request,
    Slots,
    authorize,
    decode_reply,
    encode_error,
    encode_result,
    error_from_reply,
    parse_request,
    parse_status_groups,
    read_request,
)
from agent.errors import AgentBusy, AgentError, ControlError, PermissionDenied, UsageError

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
    assert parse_request(line({"v": 1, "op": "export"})).args == {}  # a stream back: the agent takes no path
    assert parse_request(line({"v": 1, "op": "erase", "args": {"all": True}})).args == {"all": True}
    assert parse_request(line({"v": 1, "op": "erase", "args": {"before_ms": 5}})).args == {"before_ms": 5}
    assert parse_request(line({"v": 1, "op": "erase", "args": {"purpose": "fleet"}})).args == {"purpose": "fleet"}


def test_arguments_of_the_read_ops_that_take_some() -> None:
    assert parse_request(line({"v": 1, "op": "location.status", "args": {"check": True, "wait_s": 5}})).args == {
        "check": True, "wait_s": 5.0}
    assert parse_request(line({"v": 1, "op": "incidents", "args": {"since_ms": 0}})).args == {"since_ms": 0}
    for bad in (-1, 253_402_300_800_000, 1.5, True, "0"):
        with pytest.raises(UsageError, match="'since_ms' must be a time in milliseconds"):
            parse_request(line({"v": 1, "op": "incidents", "args": {"since_ms": bad}}))


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
    ({"v": 1, "op": "export", "args": {"out": "/tmp/x"}}, UsageError, "does not take: out"),
    ({"v": 1, "op": "consent.grant", "args": {"purpose": ""}}, UsageError, "purpose name"),
    ({"v": 1, "op": "consent.grant", "args": {"purpose": "Ads"}}, UsageError, "purpose name"),
    ({"v": 1, "op": "consent.grant", "args": {"purpose": "a" * 65}}, UsageError, "purpose name"),
    ({"v": 1, "op": "consent.withdraw", "args": {"purpose": ["x"]}}, UsageError, "purpose name"),
    ({"v": 1, "op": "log.show", "args": {"limit": 0}}, UsageError, "whole number"),
    ({"v": 1, "op": "log.show", "args": {"type": "Upload!"}}, UsageError, "record type"),
    ({"v": 1, "op": "erase", "args": {"before_ms": -1}}, UsageError, "milliseconds"),
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
    assert {"status", "location.status", "incidents", "log.verify", "policy.show", "consent.list", "uploads",
            "why", "log.show"} == READ_OPS
    assert {"consent.grant", "consent.withdraw", "consent.cross_border", "consent.guardian"} <= MUTATING_OPS


STRANGER = Peer(pid=10, uid=1234, gid=1234, groups=(1234, 20))


@pytest.mark.parametrize("op", sorted(READ_OPS))
def test_anyone_who_can_connect_may_read(op: str) -> None:
    authorize(op, STRANGER, group_gid=None, server_uid=SERVER_UID)
    authorize(op, STRANGER, group_gid=GROUP_GID, server_uid=SERVER_UID)


@pytest.mark.parametrize("op", sorted(MUTATING_OPS))
def test_a_stranger_may_not_change_state(op: str) -> None:
    with pytest.raises(PermissionDenied, match="only root or members") as caught:
        authorize(op, STRANGER, group_gid=GROUP_GID, server_uid=SERVER_UID)
    assert caught.value.details == {"uid": 1234}
    with pytest.raises(PermissionDenied, match="only root may"):
        authorize(op, STRANGER, group_gid=None, server_uid=SERVER_UID)


@pytest.mark.parametrize("peer", [
    Peer(pid=1, uid=0, gid=0),
    Peer(pid=1, uid=SERVER_UID, gid=SERVER_UID),
    Peer(pid=1, uid=1234, gid=GROUP_GID),
    Peer(pid=1, uid=1234, gid=1234, groups=(5, GROUP_GID)),
])
def test_root_the_agents_own_user_and_the_group_may_change_state(peer: Peer) -> None:
    authorize("location.on", peer, group_gid=GROUP_GID, server_uid=SERVER_UID)


def test_group_membership_counts_only_when_a_group_is_configured() -> None:
    member = Peer(pid=1, uid=1234, gid=GROUP_GID)
    with pytest.raises(PermissionDenied):
        authorize("location.off", member, group_gid=None, server_uid=SERVER_UID)


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
    errors.ConsentRequired("consent needed"), ControlError("busy"), errors.RequestRefused("again"),
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


# -- repeated keys: the last one must not silently win -------------------------------------------------

@pytest.mark.parametrize(("raw", "key"), [
    (b'{"v": 1, "op": "status", "op": "location.on"}', "op"),
    (b'{"v": 1, "v": 1, "op": "status"}', "v"),
    (b'{"v": 1, "op": "location.off", "args": {"wait_s": 60, "wait_s": 0}}', "wait_s"),
    (b'{"v": 1, "op": "erase", "args": {"all": {"x": [{"deep": 1, "deep": 2}]}}}', "deep"),
    (b'{"v": 1, "op": "status", "args": null, "args": {}}', "args"),
])
def test_a_repeated_key_at_any_depth_is_refused_and_named(raw: bytes, key: str) -> None:
    with pytest.raises(ControlError, match=f"request repeats the key '{key}'"):
        parse_request(raw)
    with pytest.raises(ControlError, match="repeats the key"):
        read_request(raw, ROOT, group_gid=None, server_uid=SERVER_UID)


def test_the_repeated_op_attack_runs_nothing_even_for_root() -> None:
    with pytest.raises(ControlError) as caught:
        read_request(b'{"v":1,"op":"status","op":"location.on"}', ROOT, group_gid=None, server_uid=SERVER_UID)
    assert type(caught.value) is ControlError


def test_a_repeated_key_name_is_clipped_and_printable() -> None:
    key = "\x1b[2J" + "k" * 300
    raw = b'{"v": 1, ' + (json.dumps(key).encode() + b": 1, ") * 2 + b'"op": "status"}'
    with pytest.raises(ControlError) as caught:
        parse_request(raw)
    assert "\x1b" not in str(caught.value) and len(str(caught.value)) < 100


def _with_a_repeat(value: dict[str, Any], path: list[int]) -> str:
    """``value`` as JSON text with one key repeated, in the object that ``path`` picks keys down to."""
    keys = sorted(value)
    chosen = keys[path[0] % len(keys)]
    deeper = len(path) > 1 and isinstance(value[chosen], dict)
    parts = [f"{json.dumps(key)}: "
             + (_with_a_repeat(value[key], path[1:]) if key == chosen and deeper else json.dumps(value[key]))
             for key in keys]
    if not deeper:
        parts.append(f"{json.dumps(chosen)}: 0")  # the repeat, here
    return "{" + ", ".join(parts) + "}"


_objects = st.recursive(
    st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=4), min_size=1, max_size=3),
    lambda inner: st.dictionaries(st.text(max_size=4), inner | st.integers(), min_size=1, max_size=3),
    max_leaves=8,
)


@given(_objects, st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=4))
def test_any_repeated_key_anywhere_is_refused(value: dict[str, Any], path: list[int]) -> None:
    text = _with_a_repeat(value, path)
    assert json.loads(text) is not None  # plain json would have taken it, the last key winning
    raw = ('{"v": 1, "op": "erase", "args": {"all": ' + text + "}}").encode()
    with pytest.raises(ControlError, match="repeats the key"):
        parse_request(raw)


# -- authorisation comes before argument checks ---------------------------------------------------------

ROOT = Peer(pid=1, uid=0, gid=0)

_BAD_ARGS: list[Any] = [None, [], "x", {"wait_s": -1}, {"wait_s": "soon"}, {"purpose": "Ads"}, {"out": "relative"},
             {"all": 1}, {"uid": 0}, {}]


@pytest.mark.parametrize("op", sorted(MUTATING_OPS))
@pytest.mark.parametrize("args", _BAD_ARGS)
def test_a_stranger_learns_nothing_about_the_arguments_of_an_op_it_may_not_run(op: str, args: Any) -> None:
    raw = line({"v": 1, "op": op, "args": args})
    with pytest.raises(PermissionDenied) as caught:
        read_request(raw, STRANGER, group_gid=GROUP_GID, server_uid=SERVER_UID)
    assert caught.value.message == f"'{op}' changes the agent's state; only root or members of the agent's " \
        "control group may do that"


@given(op=st.sampled_from(sorted(MUTATING_OPS)), args=_json | st.dictionaries(_arg_names, _json, max_size=3))
def test_any_arguments_of_a_mutating_op_from_a_stranger_are_not_permitted(op: str, args: Any) -> None:
    with pytest.raises(PermissionDenied):
        read_request(line({"v": 1, "op": op, "args": args}), STRANGER, group_gid=GROUP_GID,
                     server_uid=SERVER_UID)


def test_the_same_bad_arguments_from_root_or_a_member_are_named() -> None:
    raw = line({"v": 1, "op": "location.on", "args": {"wait_s": -1}})
    member = Peer(pid=1, uid=1234, gid=1234, groups=(GROUP_GID,))
    for peer in (ROOT, member):
        with pytest.raises(UsageError, match="between 0 and 60"):
            read_request(raw, peer, group_gid=GROUP_GID, server_uid=SERVER_UID)


def test_a_stranger_still_gets_argument_errors_for_ops_it_may_run() -> None:
    with pytest.raises(UsageError, match="does not take: x"):
        read_request(line({"v": 1, "op": "status", "args": {"x": 1}}), STRANGER, group_gid=GROUP_GID,
                     server_uid=SERVER_UID)


def test_read_request_returns_the_checked_request_for_an_allowed_peer() -> None:
    raw = line({"v": 1, "op": "location.off", "args": {"wait_s": 3}})
    assert read_request(raw, ROOT, group_gid=None, server_uid=SERVER_UID) == Request("location.off",
                                                                                       {"wait_s": 3.0})


def test_the_op_table_is_the_one_source_of_ops() -> None:
    assert set(OP_TABLE) == OPS
    assert {op for op, spec in OP_TABLE.items() if not spec.mutating} == READ_OPS
    assert {op for op, spec in OP_TABLE.items() if spec.mutating} == MUTATING_OPS
    for spec in OP_TABLE.values():
        assert spec.required <= set(spec.args)


# -- connection slots ------------------------------------------------------------------------------------

PRIVILEGED = frozenset({0, SERVER_UID})


def slots(shared: int = 4, per_uid: int = 2, reserved: int = 2) -> Slots:
    return Slots(shared=shared, per_uid=per_uid, reserved=reserved, privileged_uids=PRIVILEGED,
                 read_timeout_s=5.0, crowded_read_timeout_s=1.0)


def test_one_uid_holds_at_most_its_share() -> None:
    table = slots(shared=10, per_uid=2)
    assert table.take(1000) == 5.0
    assert table.take(1000) == 1.0  # a second silent connection is a flood's: it gets the short deadline
    assert table.take(1000) is None
    assert table.take(1001) == 5.0  # another uid is not held up
    table.give_back(1000)
    assert table.take(1000) == 1.0
    assert table.held_by(1000) == 2 and table.held == 3


def test_root_and_the_agents_uid_get_slots_when_everyone_else_is_full() -> None:
    table = slots(shared=4, per_uid=2, reserved=2)
    for uid in (1000, 1000, 1001, 1001):
        assert table.take(uid) is not None
    assert table.take(1002) is None  # the shared slots are gone
    assert table.take(0) == 5.0
    assert table.take(SERVER_UID) == 5.0
    assert table.take(0) is None  # and the reserved ones too
    table.give_back(1000)
    assert table.take(1002) is None  # a freed slot below the privileged ones is not shared again yet
    table.give_back(0)
    table.give_back(SERVER_UID)
    assert table.take(1002) == 5.0


def test_giving_back_what_was_not_taken_is_a_bug() -> None:
    with pytest.raises(ValueError):
        slots().give_back(1000)


@pytest.mark.parametrize("options", [{"shared": 0}, {"per_uid": 0}, {"reserved": 0}])
def test_slot_limits_must_be_positive(options: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        slots(**options)


_slot_steps = st.lists(st.tuples(st.booleans(), st.sampled_from([0, SERVER_UID, 1000, 1001, 1002, 1003])),
                       max_size=80)


@given(_slot_steps, st.integers(1, 6), st.integers(1, 4), st.integers(1, 4))
def test_slots_keep_their_limits_and_always_leave_room_for_root(
        steps: list[tuple[bool, int]], shared: int, per_uid: int, reserved: int) -> None:
    table = slots(shared=shared, per_uid=per_uid, reserved=reserved)
    held: list[int] = []
    for take, uid in steps:
        if take:
            if table.take(uid) is not None:
                held.append(uid)
        elif uid in held:
            table.give_back(uid)
            held.remove(uid)
        unprivileged = [u for u in held if u not in PRIVILEGED]
        assert len(unprivileged) <= shared
        assert all(unprivileged.count(u) <= per_uid for u in unprivileged)
        assert table.held == len(held) <= shared + reserved
    privileged_held = sum(1 for u in held if u in PRIVILEGED)
    room = shared + reserved - len(held)
    assert room >= reserved - privileged_held  # whatever others hold, root still has its reserved slots
    for _ in range(room):
        assert table.take(0) is not None
    assert table.take(0) is None


# -- the client's "busy" retry -----------------------------------------------------------------------------

def test_the_client_knows_the_busy_kind_by_name() -> None:
    assert AgentBusy.__name__ == control_wire.BUSY_KIND
    assert issubclass(AgentBusy, ControlError)


def test_a_busy_reply_is_recognised_and_nothing_else_is() -> None:
    assert control_wire.is_busy_reply(encode_error(AgentBusy("the agent is busy; try again")).rstrip(b"\n"))
    for other in (encode_error(ControlError("busy")), encode_error(PermissionDenied("AgentBusy")),
                  encode_result({"kind": "AgentBusy"}), b'{"ok": false, "error": "AgentBusy"}', b"AgentBusy",
                  b'{"ok": false, "error": {"kind": "AgentBusy"' + b" " * 600 + b"}}", b"[" * 400 + b"AgentBusy"):
        assert not control_wire.is_busy_reply(other), other


def test_a_busy_reply_is_raised_as_agent_busy() -> None:
    with pytest.raises(AgentBusy, match="busy"):
        decode_reply(encode_error(AgentBusy("the agent is busy; try again")))


def test_backoff_doubles_from_the_first_pause_up_to_its_cap() -> None:
    ceilings = [control_wire.backoff_ceiling_s(attempt) for attempt in range(12)]
    assert ceilings[0] == control_wire.BACKOFF_FIRST_S
    assert all(later == min(control_wire.BACKOFF_CAP_S, 2 * earlier)
               for earlier, later in itertools.pairwise(ceilings))
    assert ceilings[-1] == control_wire.BACKOFF_CAP_S
    assert control_wire.backoff_ceiling_s(10**6) == control_wire.BACKOFF_CAP_S
