"""The local control channel: a 0600 Unix socket in the data dir, framed like the wire."""
