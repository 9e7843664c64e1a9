"""Pure tests of the peer-management building blocks: no trio, no sockets."""
