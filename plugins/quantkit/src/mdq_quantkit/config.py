"""The quantization config: bits, group size (a short last group allowed), symmetric or asymmetric."""

from __future__ import annotations

from typing import Any

from attrs import asdict, frozen

BITS = (2, 3, 4, 8)


@frozen
class QuantConfig:
    """How weights are quantized: `bits` in {2,3,4,8}, `group_size` > 0 (or -1 = one group per row)."""

    bits: int = 4
    group_size: int = 128
    sym: bool = False

    def __attrs_post_init__(self) -> None:
        if isinstance(self.bits, bool) or self.bits not in BITS:
            raise ValueError(f"bits must be one of {BITS}, got {self.bits!r}")
        if isinstance(self.group_size, bool) or not isinstance(self.group_size, int) or \
                (self.group_size <= 0 and self.group_size != -1):
            raise ValueError(f"group_size must be a positive integer or -1 (one group per row), got {self.group_size!r}")

    @property
    def maxq(self) -> int:
        """The largest integer code."""
        return 2 ** self.bits - 1

    def groups(self, in_features: int) -> int:
        """Return the number of groups per row (the last one may be short, e.g. 576 = 4 x 128 + 64)."""
        g = self.group(in_features)
        return -(-in_features // g)

    def group(self, in_features: int) -> int:
        """Return the group size used for a layer, refusing one larger than the layer."""
        if self.group_size == -1:
            return in_features
        if self.group_size > in_features:
            raise ValueError(f"group_size {self.group_size} is larger than the layer's {in_features} input features; "
                             f"use at most {in_features} or -1")
        return self.group_size

    def to_json(self) -> dict[str, Any]:
        """Return the JSON form."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QuantConfig:
        """Read the JSON form, refusing unknown keys."""
        extra = set(data) - {"bits", "group_size", "sym"}
        if extra:
            raise ValueError(f"unknown quantization config keys: {', '.join(sorted(extra))}")
        return cls(**data)
