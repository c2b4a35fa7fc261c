"""Port URLs that can never be opened are named before anything starts (transport.check_url)."""

from __future__ import annotations

import pytest

from agent import sim, transport
from agent.errors import UsageError


@pytest.fixture(autouse=True)
def sim_scheme() -> None:
    sim.register()  # explicit, as the daemon does when its config names sim://


@pytest.mark.parametrize(("url", "fragment"), [
    ("", "empty"),
    ("foo://bar", "protocol 'foo' not known"),
    ("sim://ec25?seed=abc", "seed must be an integer"),
    ("sim://nosuchmodel", "unknown simulated modem model"),
    ("sim://ec25?colour=red", "unknown sim:// option"),
    ("loop://?bogus=1", "its handler cannot parse it (KeyError)"),  # pyserial trips on its own message
])
def test_urls_that_can_never_work_are_usage_errors(url: str, fragment: str) -> None:
    with pytest.raises(UsageError) as caught:
        transport.check_url(url)
    assert fragment in str(caught.value)


@pytest.mark.parametrize("url", ["/dev/ttyUSB9", "sim://ec25?seed=3&ttff=0", "loop://", "socket://127.0.0.1:7000",
                                 "spy:///dev/ttyUSB2"])
def test_urls_that_may_work_later_pass(url: str) -> None:
    transport.check_url(url)  # a tty that is missing now may be plugged in later; nothing is opened


def test_opening_a_url_whose_handler_breaks_is_a_usage_error_not_a_crash() -> None:
    with pytest.raises(UsageError, match="cannot parse"):
        transport.open_port("loop://?bogus=1")
