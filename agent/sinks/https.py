"""``https://host[:port]/path``: one POST of the JSON body per message, TLS verified, no redirects followed.

- 2xx: delivered.
- 408, 429, 5xx, 3xx (a redirect is never followed; it may be a temporary move) and every connection, TLS or
  timeout error: :class:`SinkUnavailable`, retried.
- any other 4xx (and 1xx or other oddities): :class:`SinkRejected`, dead-lettered.

The message id goes in an ``Idempotency-Key`` header, so that a server can de-duplicate a retried POST whose
answer was lost. One connection per message: at the agent's rates a handshake is cheap, and there is no idle
keep-alive connection whose silent close by the server would turn the next send into a spurious failure.
At most ``MAX_RESPONSE_BYTES`` of the answer are read.
"""

from __future__ import annotations

import http.client
import ssl

from agent.errors import SinkRejected, SinkUnavailable
from agent.sinks.tls import tls_context
from agent.spool import Message

MAX_RESPONSE_BYTES = 64 * 1024
_RETRIED_CLIENT_ERRORS = frozenset({408, 429})


class HttpsSink:
    def __init__(self, name: str, host: str, port: int, path: str, *, ca_file: str | None, cert_file: str | None,
                 key_file: str | None, timeout_s: float) -> None:
        self.name = name
        self._host, self._port, self._path = host, port, path
        self._context = tls_context(name, ca_file, cert_file, key_file)
        self._timeout_s = timeout_s

    def send(self, message: Message) -> None:
        if not message.id.isascii():
            raise SinkRejected("the message id cannot be sent in an HTTP header (not ASCII)", sink=self.name)
        status = self._post(message)
        _judge(self.name, status)

    def close(self) -> None:
        """Nothing is held between sends."""

    def _post(self, message: Message) -> int:
        connection = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout_s,
                                                 context=self._context)
        response: http.client.HTTPResponse | None = None
        try:
            connection.request("POST", self._path, body=message.body, headers={
                "Content-Type": "application/json",
                "Idempotency-Key": message.id,
                "User-Agent": "quectel-privacy-agent",
            })
            response = connection.getresponse()
            response.read(MAX_RESPONSE_BYTES)  # bounded: a huge or endless answer cannot hold the uploader
            return response.status
        except ssl.SSLCertVerificationError as exc:
            raise SinkUnavailable("the HTTPS server's certificate does not verify", sink=self.name) from exc
        except (OSError, http.client.HTTPException) as exc:
            raise SinkUnavailable(f"the HTTPS POST failed: {type(exc).__name__}", sink=self.name) from exc
        finally:
            # The response holds the TLS socket through its own file object: closing only the connection would
            # leave the descriptor open until garbage collection whenever reading the answer failed half-way.
            if response is not None:
                response.close()
            connection.close()


def _judge(sink: str, status: int) -> None:
    if 200 <= status < 300:
        return
    if status >= 500 or status in _RETRIED_CLIENT_ERRORS or 300 <= status < 400:
        raise SinkUnavailable(f"the HTTPS server answered {status}", sink=sink, status=status)
    raise SinkRejected(f"the HTTPS server refused the message with {status}", sink=sink, status=status)
