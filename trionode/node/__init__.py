"""The node runtime: configuration, logging and the tasks that run a node."""
