"""The Quectel dialect over the AT core: command builders, reply parsers, result codes and URC classes.

``commands`` builds validated ``agent.at.Command`` objects; ``responses`` turns ``agent.at.Response`` objects
into typed values; ``codes`` maps error finals to exceptions (named GNSS ``CmeError`` subclasses); ``urc``
classifies unsolicited lines. Everything here is pure: no I/O, no clock.
"""
