"""The one exception the chain core raises for bad data, carrying a stable reason code."""


class ValidationError(Exception):
    """Data broke a consensus or policy rule.

    ``reason`` is a stable snake_case code (it appears in ``tx_rejected``/``block_rejected``
    logs and in protocol.md); ``detail`` is free text for humans.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class DecodeError(ValidationError):
    """A canonical encoding was malformed; ``field`` names where (e.g. ``txs[3].amount``)."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__("malformed", f"{field}: {detail}")
        self.field = field
