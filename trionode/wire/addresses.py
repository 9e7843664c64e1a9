"""``host:port`` addresses as peers, config files and the CLI write them.

A host is an IPv4 literal, an IPv6 literal in brackets (``[::1]:5001``) or a DNS name; the
port is 1..65535 in plain decimal. Hosts come back normalized (IPs in their standard form,
names in lowercase) so one peer has one spelling in the peer table.
"""

import ipaddress
import re
from typing import Final

# The longest valid address is a 253-character DNS name plus ":65535"; 262 is the protocol's
# field limit (a little slack, so a limit check never has to be exact).
MAX_ADDRESS_LEN: Final = 262
# RFC 1035 limits: 253 characters in a name written without its final dot, 63 in a label.
MAX_DNS_NAME: Final = 253
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_PORT: Final = re.compile(r"[1-9][0-9]{0,4}")


class AddressError(ValueError):
    """Not a valid ``host:port``; the message says what is wrong."""


def parse_address(text: str) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``; IPv6 hosts come back without brackets."""
    if len(text) > MAX_ADDRESS_LEN:
        raise AddressError(f"address longer than {MAX_ADDRESS_LEN} characters")
    host_part, sep, port_part = text.rpartition(":")
    if not sep:
        raise AddressError(f"expected host:port, got {text!r}")
    if not _PORT.fullmatch(port_part) or int(port_part) > 65535:
        raise AddressError(f"port must be 1..65535 in decimal, got {port_part!r}")
    return _parse_host(host_part), int(port_part)


def _parse_host(host: str) -> str:
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        if "%" in inner:
            raise AddressError("IPv6 zone ids are not allowed")
        try:
            return str(ipaddress.IPv6Address(inner))
        except ValueError:
            raise AddressError(f"not an IPv6 address: {inner!r}") from None
    if ":" in host:
        raise AddressError(f"an IPv6 address must be written in brackets: [{host}]:port")
    if not host:
        raise AddressError("empty host")
    labels = host.lower().split(".")
    if labels[-1].isdigit():
        # An all-numeric last label is never a DNS name (RFC 3696 s. 2): it must be an IPv4 literal.
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise AddressError(f"not an IPv4 address: {host!r}") from None
    if len(host) > MAX_DNS_NAME or not all(_LABEL.fullmatch(label) for label in labels):
        raise AddressError(f"not a valid host name: {host!r}")
    return ".".join(labels)


def format_address(host: str, port: int) -> str:
    """The inverse of ``parse_address``: brackets around IPv6 hosts."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
