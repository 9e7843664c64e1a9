"""trionode: a proof-of-work blockchain node on trio, speaking length-prefixed msgpack over TCP."""

__version__ = "0.1.0"
AGENT = f"trionode/{__version__}"
