"""The P2P layer: transports, connections, the peer table, bans, discovery, relay and sync."""
