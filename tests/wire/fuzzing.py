"""A seeded mutation fuzzer for the decoder: every input must decode or raise ProtocolError.

Mutations start from valid frames of every type (and a few hostile shapes): byte flips,
truncation, insertion, trailing bytes, random bytes, and structural edits that replace any
value anywhere in the decoded envelope with a value of another type, or delete it. The test
suite runs it with 100,000 inputs; ``tests/fuzz/fuzz_wire.py`` runs it for as long as you like.
"""

import os
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import msgpack

from trionode.wire.errors import PROTOCOL_ERROR_CODES, ProtocolError
from trionode.wire.framing import FrameDecoder
from trionode.wire.messages import decode_message, encode_message

from .factories import NODE, one_of_each
from .make_protocol_examples import build_examples

# Structural edits re-pack the whole body: only for the small valid frames, not hostile shapes.
STRUCTURAL_MAX = 8192
REPLACEMENTS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**64 - 1,
    -(2**63),
    1.5,
    float("nan"),
    float("inf"),
    "",
    "x",
    "ab" * 32,
    "AB" * 16,
    "zz" * 32,
    b"",
    b"\x00" * 32,
    [],
    [None] * 3,
    {},
    {"type": "Hello"},
    "\u00e9" * 70,
    "x" * 2000,
    [[[[[]]]]],
]


def fuzz_seed() -> int:
    """``TRIONODE_FUZZ_SEED`` to replay a run, else a fresh seed: every CI run explores new
    inputs, and a failure names the seed that reproduces it."""
    chosen = os.environ.get("TRIONODE_FUZZ_SEED")
    return int(chosen) if chosen else random.SystemRandom().randrange(2**32)


def corpus() -> list[bytes]:
    """Valid frame bodies of every type, and hostile shapes that are valid msgpack."""
    bodies = [encode_message(m, NODE, 1.0)[4:] for m in one_of_each()]
    bodies += [e.data[4:] for e in build_examples().values() if e.message is not None]
    bodies += [
        b"\x91" * 1500 + b"\xc0",  # nesting beyond msgpack's stack
        b"\x81\xa1x\x94" + (b"\xdc\x4e\x20" + b"\x80" * 20000) * 4,  # 80,000 empty maps: over budget
        b"\xdd\xff\xff\xff\xff",  # an array announcing 4 billion elements
        b"\xdf\xff\xff\xff\xff",  # the same for a map
        b"\xdb\xff\xff\xff\xff",  # a 4 GB str
        b"\xd6\xff\x00\x00\x00\x00",  # msgpack's timestamp ext
        b"\xc7\x00\x05",  # an empty ext
    ]
    return bodies


def _structural(rng: random.Random, body: bytes) -> bytes:
    """Replace (or delete) the value at a random position: a random walk down the tree."""
    try:
        obj = msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception:
        return body
    parent: Any = None
    key: Any = None
    node = obj
    while isinstance(node, (dict, list)) and node and (parent is None or rng.random() < 0.75):
        parent = node
        key = rng.choice(list(node)) if isinstance(node, dict) else rng.randrange(len(node))
        node = node[key]
    if parent is None:
        return body
    if isinstance(parent, dict) and rng.random() < 0.25:
        del parent[key]
    else:
        parent[key] = rng.choice(REPLACEMENTS)
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def _bytewise(rng: random.Random, body: bytes) -> bytes:
    data = bytearray(body)
    kind = rng.randrange(6)
    if kind == 0 and data:  # flip or replace a few bytes
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 1:  # truncate
        del data[rng.randrange(len(data) + 1) :]
    elif kind == 2:  # insert random bytes
        at = rng.randrange(len(data) + 1)
        data[at:at] = rng.randbytes(rng.randint(1, 16))
    elif kind == 3:  # trailing bytes
        data += rng.randbytes(rng.randint(1, 8))
    elif kind == 4:  # duplicate a slice
        a = rng.randrange(len(data) + 1)
        b = rng.randrange(a, len(data) + 1)
        data[b:b] = data[a:b]
    else:  # random bytes, sometimes starting like a map
        data = bytearray(rng.choice([b"", b"\x84", b"\x81\xa4type"]) + rng.randbytes(rng.randint(0, 64)))
    return bytes(data)


def run(
    inputs: int,
    seed: int = 0,
    check: Callable[[bytes], None] | None = None,
    bodies: list[bytes] | None = None,
) -> Counter[str]:
    """Decode ``inputs`` mutated bodies (of ``bodies``, else the corpus); return counts of
    outcomes ("ok" or the error code); ``check`` sees every input after it.

    Raises AssertionError on the first input that escapes as anything but ProtocolError.
    """
    rng = random.Random(seed)
    bodies = bodies or corpus()
    outcomes: Counter[str] = Counter()
    for _ in range(inputs):
        body = rng.choice(bodies)
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            structural = len(body) < STRUCTURAL_MAX and rng.random() < 0.4
            body = _structural(rng, body) if structural else _bytewise(rng, body)
        try:
            decode_message(body)
        except ProtocolError as exc:
            assert exc.code in PROTOCOL_ERROR_CODES, exc.code
            outcomes[exc.code] += 1
        except Exception as exc:
            raise AssertionError(f"{type(exc).__name__} escaped for body {body.hex()}") from exc
        else:
            outcomes["ok"] += 1
        if check is not None:
            check(body)
    return outcomes


def frame_stream(rng: random.Random, bodies: list[bytes]) -> bytes:
    """A few frames; half the time one byte is corrupted, often in a length prefix."""
    out = bytearray()
    prefixes: list[int] = []
    for body in rng.sample(bodies, k=min(3, len(bodies))):
        prefixes.append(len(out))
        out += len(body).to_bytes(4, "big") + body
    if rng.random() < 0.5:
        at = rng.choice(prefixes) + rng.randrange(4) if rng.random() < 0.5 else rng.randrange(len(out))
        out[at] = rng.randrange(256)
    return bytes(out)


def run_framing(inputs: int, seed: int = 0) -> Counter[str]:
    """Feed corrupted streams in random pieces; only ProtocolError may come out."""
    rng = random.Random(seed)
    bodies = corpus()[:16]
    outcomes: Counter[str] = Counter()
    for _ in range(inputs):
        stream = frame_stream(rng, bodies)
        decoder = FrameDecoder()
        pos = 0
        try:
            while pos < len(stream):
                step = rng.randint(1, 64)
                for frame in decoder.feed(stream[pos : pos + step]):
                    decode_message(frame)
                pos += step
        except ProtocolError as exc:
            outcomes[exc.code] += 1
        else:
            outcomes["ok"] += 1
    return outcomes
