"""Expectations and soak figures judged from observations (pure)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.rig import checks
from agent.rig.checks import Observations
from agent.rig.scenario import Expectation


def observed(gnss: list[tuple[float, bool]], windows: list[list[float | None]], end: float = 100.0) -> Observations:
    seen = Observations(gnss=gnss, off_windows=windows, end=end)
    return seen


def test_gnss_on_while_off_is_measured_from_its_first_sample_to_the_first_off_one() -> None:
    seen = observed([(1, False), (2, True), (3, True), (6.5, False), (7, True), (8, False)], [[0.0, None]])
    assert checks.on_stretches_while_off(seen) == [4.5, 1.0]
    assert checks.evaluate(Expectation("gnss_off_within", {"within_s": 5}), seen).passed
    failed = checks.evaluate(Expectation("gnss_off_within", {"within_s": 4}), seen)
    assert not failed.passed and "4.5 s" in failed.detail


def test_gnss_on_while_the_switch_is_on_is_not_a_violation() -> None:
    seen = observed([(1, True), (5, True), (9, True), (11, False)], [[0.0, 0.5], [10.0, None]])
    assert checks.longest_on_while_off(seen) == 1.0


def test_gnss_still_on_at_the_end_counts_until_the_end() -> None:
    seen = observed([(1, False), (2, True), (3, True)], [[0.0, None]], end=20.0)
    assert checks.switch_violations(seen, 10.0) == 1


def test_uploads_are_counted_only_inside_off_windows() -> None:
    seen = Observations(uploads=[(1, 0), (2, 3), (5, 3), (6, 4), (12, 9)], off_windows=[[4.0, 10.0]], end=20)
    assert checks.uploads_while_off(seen) == 1
    assert not checks.evaluate(Expectation("no_upload_while_off"), seen).passed


def test_an_acknowledged_change_must_be_the_final_desired_state() -> None:
    seen = Observations(acknowledged=["on", "off"], final_desired="off")
    assert checks.acknowledged_lost(seen) == 0
    seen.final_desired = "on"
    assert checks.acknowledged_lost(seen) == 1
    seen.final_desired = None  # never answered: counted as a crash or hang, not as a loss
    assert checks.acknowledged_lost(seen) == 0
    seen.final_desired = "on"
    seen.unconfirmed = ["on"]  # asked for after the last acknowledgement: may legitimately be the final state
    assert checks.acknowledged_lost(seen) == 0
    seen.incidents = ["ledger-truncated"]
    assert checks.acknowledged_lost(seen) == 1


def test_a_read_back_contradicting_steady_hardware_is_a_false_verified_answer() -> None:
    gnss = [(10 + i / 10, True) for i in range(20)]
    seen = Observations(gnss=gnss, claims=[(11.0, False), (11.0, True)])
    assert checks.false_verified(seen) == 1


def test_a_read_back_during_a_transition_is_not_judged() -> None:
    gnss = [(10.0, False), (10.1, False), (10.2, True), (10.3, True)]
    seen = Observations(gnss=gnss, claims=[(10.15, False), (10.15, True)])
    assert checks.false_verified(seen) == 0


def test_incidents_ledger_and_daemon_checks() -> None:
    seen = Observations(incidents=["drift", "drift"], ledger_ok=True, ledger_message="ok")
    assert checks.evaluate(Expectation("incident", {"kind": "drift", "min_count": 2}), seen).passed
    assert not checks.evaluate(Expectation("incident", {"kind": "drift", "min_count": 3}), seen).passed
    assert checks.evaluate(Expectation("ledger_verifies"), seen).passed
    assert not checks.evaluate(Expectation("ledger_verifies"), Observations(ledger_ok=False)).passed
    assert not checks.evaluate(Expectation("daemon_up"), Observations(hangs=1)).passed


def test_identifier_leaks_are_found_as_text() -> None:
    assert checks.identifier_leaks(b'{"x":"861536033982597"}', ("861536033982597", "460001234567890")) == 1
    assert checks.identifier_leaks(b"{}", ("861536033982597",)) == 0


@given(st.lists(st.tuples(st.floats(0, 50), st.booleans()), max_size=40), st.floats(0, 20), st.floats(0, 20))
def test_violations_never_grow_with_a_looser_bound(samples: list[tuple[float, bool]], low: float,
                                                   extra: float) -> None:
    seen = observed(sorted(samples), [[0.0, None]], end=60.0)
    assert checks.switch_violations(seen, low + extra) <= checks.switch_violations(seen, low)
    assert all(0 <= stretch <= 60 for stretch in checks.on_stretches_while_off(seen))


def test_local_feed_sentences_while_off_fail_the_no_upload_check() -> None:
    seen = Observations(feed=[(1, 10), (5, 12), (6, 15)], off_windows=[[4.0, None]], end=20)
    assert checks.feed_while_off(seen) == 3
    result = checks.evaluate(Expectation("no_upload_while_off"), seen)
    assert not result.passed and "3 local-feed sentence(s)" in result.detail
