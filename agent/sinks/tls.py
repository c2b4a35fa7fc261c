"""The TLS client context shared by the MQTT and HTTPS sinks: verification always on."""

from __future__ import annotations

import ssl

from agent.errors import ConfigError


def tls_context(sink: str, ca_file: str | None, cert_file: str | None, key_file: str | None) -> ssl.SSLContext:
    """Server certificate and host name verified (against ``ca_file``, else the system store); the client
    certificate loaded when given. Bad files are a ConfigError at open time, not a failure at the first send."""
    try:
        context = ssl.create_default_context(cafile=ca_file)
        if cert_file:
            context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError("the sink's CA file or client certificate cannot be loaded", sink=sink) from exc
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
