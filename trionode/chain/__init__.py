"""Chain rules: pure Python, no trio, no sockets. Everything here is deterministic and testable."""
