"""The proof-of-work solvers report how many nonces they really tried (the hash rate's input)."""

from trionode.chain import pow
from trionode.node.workers import InlineSolver

PREFIX = bytes(range(116))


async def test_inline_solver_counts_up_to_its_hit_not_the_whole_round() -> None:
    target = pow.MAX_TARGET >> 4  # about one nonce in 16 hits
    nonce, tried = await InlineSolver(chunk=4096).search(PREFIX, target, 100)
    assert nonce is not None and nonce == pow.search(PREFIX, target, 100, 4096)
    assert tried == nonce - 100 + 1 < 4096


async def test_inline_solver_counts_a_whole_round_without_a_hit() -> None:
    assert await InlineSolver(chunk=64).search(PREFIX, 0, 0) == (None, 64)  # target 0: never
