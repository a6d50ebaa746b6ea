"""QuantLinear: packed integer weights with per-group scales and zeros, computed by one path chosen once.

(a) torch: dequantize once (kept as a float tensor while the layer lives), then matmul
(readable, any device; the packed form is what is stored and loaded); (b) triton: a fused dequant-matmul
kernel for 3- and 4-bit weights on a CUDA device (or under TRITON_INTERPRET=1 for tests).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .config import QuantConfig
from .packing import pack, unpack
from .quant import dequantize


class QuantLinear(nn.Module):
    """A linear layer whose weight is stored packed (`qweight`), with `scales` (fp16) and `zeros` (uint8)."""

    def __init__(self, in_features: int, out_features: int, cfg: QuantConfig, bias: bool = False,
                 kernel: str = "auto") -> None:
        super().__init__()
        self.in_features, self.out_features, self.cfg = in_features, out_features, cfg
        G = cfg.groups(in_features)
        self.register_buffer("qweight", torch.zeros(out_features, -(-in_features * cfg.bits // 32), dtype=torch.int32))
        self.register_buffer("scales", torch.zeros(out_features, G, dtype=torch.float16))
        self.register_buffer("zeros", torch.zeros(out_features, G, dtype=torch.uint8))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        # rows kept in float16 instead of quantized (outlier rows a wrapper chose to protect); empty by default
        self.register_buffer("keep_idx", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("keep_rows", torch.zeros(0, in_features, dtype=torch.float16))
        if kernel not in ("auto", "torch", "triton"):
            raise ValueError(f"kernel must be 'auto', 'torch' or 'triton', got {kernel!r}")
        self.kernel_request = kernel
        self.kernel = "torch"
        self._weight: Tensor | None = None  # the torch path's float weight, dequantized once

    @classmethod
    def from_codes(cls, codes: Tensor, scales: Tensor, zeros: Tensor, cfg: QuantConfig, bias: Tensor | None = None,
                   kernel: str = "auto") -> QuantLinear:
        """Build a layer from integer codes (out, in) and per-group scales / zeros (out, G)."""
        out_f, in_f = codes.shape
        m = cls(in_f, out_f, cfg, bias is not None, kernel)
        m.qweight.copy_(pack(codes.cpu(), cfg.bits))
        m.scales.copy_(scales.half())
        m.zeros.copy_(zeros.to(torch.uint8))
        if bias is not None:
            m.bias.copy_(bias.detach().float())
        m.choose_kernel()
        return m

    def choose_kernel(self) -> str:
        """Pick the compute path once: triton where it can run, else torch."""
        from .kernels import triton_usable

        want = self.kernel_request
        ok = self.cfg.bits in (3, 4) and triton_usable(self.qweight.device)
        if want == "triton" and not ok:
            raise RuntimeError(f"the triton kernel needs 3- or 4-bit weights on a CUDA device (or TRITON_INTERPRET=1); "
                               f"this layer has {self.cfg.bits} bits on {self.qweight.device}")
        # 'auto' takes triton only on a GPU: the interpreter is for testing the kernel, not for serving on CPU
        self.kernel = "triton" if want == "triton" or (want == "auto" and ok and self.qweight.is_cuda) else "torch"
        return self.kernel

    def codes(self) -> Tensor:
        """Return the unpacked integer codes (out, in)."""
        return unpack(self.qweight, self.cfg.bits, self.in_features)

    def dequantized(self) -> Tensor:
        """Return the float32 weight (out, in), kept rows included."""
        w = dequantize(self.codes(), self.scales, self.zeros, self.cfg)
        if self.keep_idx.numel():
            w[self.keep_idx] = self.keep_rows.float()
        return w

    def keep(self, rows: Tensor, values: Tensor) -> None:
        """Store `rows` of the weight as float16 `values` (len(rows), in) instead of their quantized codes."""
        rows = torch.as_tensor(rows, dtype=torch.int64).reshape(-1).cpu()
        if values.shape != (rows.numel(), self.in_features):
            raise ValueError(f"kept rows need values of shape ({rows.numel()}, {self.in_features}), got {tuple(values.shape)}")
        if rows.numel() and (int(rows.min()) < 0 or int(rows.max()) >= self.out_features or rows.unique().numel() != rows.numel()):
            raise ValueError(f"kept rows must be distinct ids in [0, {self.out_features})")
        self.keep_idx = rows.to(self.qweight.device)
        self.keep_rows = values.detach().to(self.qweight.device, torch.float16)
        self._weight = None

    def _apply(self, fn: Any, recurse: bool = True) -> QuantLinear:
        out = super()._apply(fn, recurse)
        self._weight = None
        self.choose_kernel()  # moved to another device: the path is chosen again, once
        return out

    def _load_from_state_dict(self, state_dict: dict[str, Tensor], prefix: str, *args: Any, **kwargs: Any) -> None:
        self._weight = None  # new packed weights: the cached float weight is stale
        for name in ("keep_idx", "keep_rows"):  # their length is the file's, not the constructor's
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=self.qweight.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """Return x @ W^T + b through the chosen path."""
        if self.kernel == "triton":
            from .kernels import dequant_matmul

            y = dequant_matmul(x.reshape(-1, self.in_features), self.qweight, self.scales, self.zeros, self.cfg)
            y = y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)
            if self.keep_idx.numel():
                y[..., self.keep_idx] = nn.functional.linear(x, self.keep_rows.to(x.dtype))
            return y + self.bias if self.bias is not None else y
        # dequantize once, then matmul: unpacking on every call would cost more than the matmul itself on CPU
        if self._weight is None or self._weight.dtype != x.dtype:
            self._weight = self.dequantized().to(x.dtype)
        return nn.functional.linear(x, self._weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, bits={self.cfg.bits}, "
                f"group={self.cfg.group_size}, sym={self.cfg.sym}, kernel={self.kernel}")
