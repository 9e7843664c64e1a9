import pytest
from hypothesis import given
from hypothesis import strategies as st

from trionode.wire.addresses import MAX_ADDRESS_LEN, AddressError, format_address, parse_address

from .factories import hosts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:5001", ("127.0.0.1", 5001)),
        ("[::1]:5001", ("::1", 5001)),
        ("[0:0:0:0:0:0:0:1]:1", ("::1", 1)),
        ("[2001:DB8::1]:65535", ("2001:db8::1", 65535)),
        ("[::ffff:1.2.3.4]:80", ("::ffff:102:304", 80)),
        ("localhost:5001", ("localhost", 5001)),
        ("Node-1.Example.COM:443", ("node-1.example.com", 443)),
        ("a" * 63 + ".b:1", ("a" * 63 + ".b", 1)),
        ("x1.io:9", ("x1.io", 9)),
        ("node_1:5001", ("node_1", 5001)),  # container names (protocol.md, PeerDiscovery)
        ("_svc.my_host:1", ("_svc.my_host", 1)),
    ],
)
def test_valid_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "localhost",
        "localhost:",
        ":5001",
        "host:0",
        "host:65536",
        "host:05001",
        "host:+5",
        "host:5 ",
        "host:five",
        "::1:5001",
        "[::1]",
        "[::1:5001",
        "[not-ip]:5",
        "[1.2.3.4]:5",
        "[fe80::1%eth0]:5",
        "1.2.3.256:5",
        "01.2.3.4:5",
        "1.2.3:5",
        "abc.123:5",
        "-host:5",
        "host-:5",
        "ho st:5",
        "a..b:5",
        ".a:5",
        "a.:5",
        "é.com:5",
        "a" * 64 + ".com:5",
        ".".join(["a" * 60] * 5) + ":5",
        "x" * (MAX_ADDRESS_LEN + 1),
    ],
)
def test_invalid_addresses(text: str) -> None:
    with pytest.raises(AddressError):
        parse_address(text)


def test_address_error_is_a_value_error() -> None:
    assert issubclass(AddressError, ValueError)


@given(hosts, st.integers(1, 65535))
def test_format_then_parse_round_trips(host: str, port: int) -> None:
    text = format_address(host, port)
    assert len(text) <= MAX_ADDRESS_LEN
    assert parse_address(text) == (host, port)


@pytest.mark.parametrize(
    "host",
    [
        "\u212a.example",  # the Kelvin sign, which str.lower() turns into an ASCII "k"
        "ex\u0130mple.com",  # dotted capital I: lowercases to "i" and a combining dot
        "\uff4e\uff4f\uff44\uff45",  # fullwidth "node"
        "1.2.3.\u0664",  # an Arabic-Indic digit: str.isdigit() says yes, IPv4 says no
    ],
)
def test_hosts_are_ascii(host: str) -> None:
    # A non-ASCII host would come back as another host's spelling (the Kelvin sign as
    # "k.example"), or depend on Unicode case rules a peer in another language may not share.
    with pytest.raises(AddressError, match="not a host name"):
        parse_address(f"{host}:5001")
