"""``host:port`` addresses as peers, config files and the CLI write them (the one parser).

A host is an IPv4 literal, an IPv6 literal in brackets (``[::1]:5001``) or a DNS name; the
port is 1..65535 in plain decimal (0, "any free port", where a caller listens). Hosts come
back normalized (IPs in their standard form, names in lowercase) so one peer has one
spelling in the peer table. Underscores are allowed in names (container names use them);
hosts are ASCII (an internationalised name is written in its ``xn--`` form).
"""

import ipaddress
import re
from typing import Final

# The longest valid address is a 253-character DNS name plus ":65535"; 262 is the protocol's
# field limit (a little slack, so a limit check never has to be exact).
MAX_ADDRESS_LEN: Final = 262
# RFC 1035 limits: 253 characters in a name written without its final dot, 63 in a label.
MAX_DNS_NAME: Final = 253
_LABEL: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_PORT: Final = re.compile(r"0|[1-9][0-9]{0,4}")


class AddressError(ValueError):
    """Not a valid ``host:port``; the message says what is wrong."""


def parse_address(text: str, *, allow_port_zero: bool = False, allow_zone: bool = False) -> tuple[str, int]:
    """``"host:port"`` -> ``(host, port)``; IPv6 hosts come back without brackets.

    ``allow_port_zero`` for an address to listen on; ``allow_zone`` for a local IPv6 address
    with a zone id (``[fe80::1%eth0]``), meaningless to any other machine, so never on the wire.
    """
    if len(text) > MAX_ADDRESS_LEN:
        raise AddressError(f"address longer than {MAX_ADDRESS_LEN} characters")
    host_part, sep, port_part = text.rpartition(":")
    if not sep:
        raise AddressError('no ":PORT"')
    low = 0 if allow_port_zero else 1
    if not _PORT.fullmatch(port_part) or not low <= int(port_part) <= 65535:
        raise AddressError(f"port must be {low}..65535")
    return _parse_host(host_part, allow_zone), int(port_part)


def _parse_host(host: str, allow_zone: bool) -> str:
    if host.startswith("[") and host.endswith("]"):
        inner = host[1:-1]
        if "%" in inner and not allow_zone:
            raise AddressError("IPv6 zone ids are not allowed")
        try:
            return str(ipaddress.IPv6Address(inner))
        except ValueError:
            raise AddressError(f"not an IPv6 address: {inner!r}") from None
    if ":" in host:
        raise AddressError(f"an IPv6 address needs brackets, like [{host}]:port")
    if not host:
        raise AddressError("empty host")
    if not host.isascii():
        # Hosts are ASCII (protocol.md 4): str.lower() and str.isdigit() know Unicode, so the
        # Kelvin sign would pass as "k" and one peer have two spellings (IDNs go as xn--).
        raise AddressError(f"not a host name: {host!r}")
    labels = host.lower().split(".")
    if labels[-1].isdigit():
        # An all-numeric last label is never a DNS name (RFC 3696 s. 2): it must be an IPv4 literal.
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise AddressError(f"not an IPv4 address: {host!r}") from None
    if len(host) > MAX_DNS_NAME or not all(_LABEL.fullmatch(label) for label in labels):
        raise AddressError(f"not a host name: {host!r}")
    return ".".join(labels)


def host_of(address: str) -> str:
    """The host of a well-formed ``host:port`` (one we parsed or formatted), IPv6 without
    brackets; a cheap split for addresses already checked, not a parser."""
    return address.rsplit(":", 1)[0].strip("[]")


def format_address(host: str, port: int) -> str:
    """The inverse of ``parse_address``: brackets around IPv6 hosts."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
