"""The names of what a node keeps in its data dir (INTERFACE.md, "Data dir"), in one place.

The control socket and the lock file are named in ``control.protocol`` (the CLI finds a
running node by them); ``top`` recognises a data dir by any of these.
"""

from typing import Final

NODE_KEY: Final = "node_key"  # the node's Ed25519 identity key
NODE_ID: Final = "node_id"  # its node id, in hex: a file in every data dir that ever ran a node
CHAIN_DB: Final = "chain.db"  # the chain store (SQLite)
PEERS: Final = "peers.json"  # the peer table
BANS: Final = "bans.json"  # the ban list
WALLETS: Final = "wallets"  # the wallet directory
