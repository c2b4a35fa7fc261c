"""A session whose port URL cannot be opened keeps its reader thread (and reports, and retries)."""

from __future__ import annotations

import logging

import pytest

from agent.session import Session
from hil_tests.conftest import wait_until


def test_a_url_the_handler_cannot_parse_does_not_end_the_reader(caplog: pytest.LogCaptureFixture) -> None:
    session = Session("loop://?bogus=1")
    with caplog.at_level(logging.ERROR, logger="agent.session"):
        session.start()
        try:
            assert wait_until(lambda: "cannot be used" in caplog.text, 5)
            reader = session._reader
            assert reader is not None and reader.is_alive()
            assert not session.connected
        finally:
            session.close()
