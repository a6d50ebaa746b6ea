"""What a registered capability object must provide, kind by kind (structural: no base class to inherit).

The kernel itself imports no tensor library, so tensor-valued arguments are typed `Any`; the
docstrings say what they are. `mdq plugins list --check` resolves every lazy reference; these
Protocols are what `isinstance(obj, Proto)` checks in the plugins' own tests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from .model import GateResult, MdqPackage
from .model.state import ControlState


@runtime_checkable
class Gate(Protocol):
    """A hard test a package must pass before it is staged."""

    def __call__(self, package: MdqPackage, state: ControlState | None) -> GateResult:
        """Pass or refuse `package` against the active `state`, saying why."""
        ...


@runtime_checkable
class Evaluator(Protocol):
    """A KPI source for shadow and canary comparison."""

    def __call__(self, state: ControlState, inputs: Sequence[Mapping[str, Any]]) -> Mapping[str, float]:
        """Return KPI values of `state` over recorded `inputs` (every value finite)."""
        ...


@runtime_checkable
class Quantizer(Protocol):
    """A quantizer backend: quantizes one transformer block at a time, in place."""

    name: str
    needs_calibration: bool

    def quantize_block(self, block: Any, inputs: list[Any], kwargs: dict[str, Any], cfg: Any) -> dict[str, Any]:
        """Replace every linear layer of the torch `block` with a quantized one; return per-layer stats.

        `inputs` are the block's calibration inputs (tensors), `kwargs` the other forward
        arguments, `cfg` the quantization config (bits, group size, symmetry).
        """
        ...


@runtime_checkable
class OutlierClassifier(Protocol):
    """Scores the rows of weight matrices; rows at or above `threshold` (or a budget) are outliers."""

    threshold: float

    def scores(self, model: Any, data: Any, layers: Mapping[str, Any], *args: Any, **kwargs: Any) -> Any:
        """Return per-layer row scores (a tensor of shape [rows] per layer name)."""
        ...


@runtime_checkable
class MoEProjector(Protocol):
    """A mixture-of-experts layer (a torch module) routing tokens to experts."""

    def forward(self, x: Any, *args: Any, **kwargs: Any) -> Any:
        """Map a [batch, d] (or [batch, seq, d]) tensor to the same shape."""
        ...


@runtime_checkable
class Pipeline(Protocol):
    """A served pipeline: one request, one control-state snapshot, one response with KPI observations."""

    def handle(self, route: str, body: Any, state: ControlState) -> tuple[Any, Sequence[Mapping[str, float]]]:
        """Answer one parsed JSON body at `route` using only `state`; return (response, observations).

        Observations are one {kpi: value} per scored item (a batch gives several). Bad input
        raises `mdqcore.errors.RequestError` (its status and `$.path` problems reach the client).
        """
        ...


__all__ = ["Evaluator", "Gate", "MoEProjector", "OutlierClassifier", "Pipeline", "Quantizer"]
