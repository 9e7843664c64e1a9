"""The wire format, sans-IO: bytes in, typed messages out, and the handshake rules.

Nothing here touches a socket or trio. ``framing`` cuts a byte stream into frames, ``codec``
turns a frame body into plain Python objects under strict limits, ``payloads`` and
``messages`` turn those into typed messages (and back), ``handshake`` decides what to answer
to a peer's ``Hello``. Every failure on untrusted input is a ``ProtocolError``.
protocol.md at the repository root is the contract these modules implement.
"""
