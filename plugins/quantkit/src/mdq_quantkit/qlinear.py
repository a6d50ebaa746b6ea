"""QuantLinear: packed integer weights with per-group scales and zeros, computed by one path chosen once.

(a) torch: dequantize once (kept as a float tensor while the layer lives), then matmul; the
readable reference path and the test oracle, any device and bit width. (b) int4: 4-bit layers
on CPU stay packed and run through torch's int4 CPU kernel (`cpukernel.py`); once the kernel's
packed form exists (built when a loader chooses the path, or at the first call), the bit-stream
`qweight` is released and rebuilt exactly only when it is asked for (saving, `codes()`), so the
layer holds one packed copy. Layers that read the same input may share one packed form
(`cpukernel.SharedInput`, set up by `fuse.fuse_shared_inputs`): one kernel call then serves
q, k and v, or gate and up. (c) triton: a fused
dequant-matmul kernel for 3- and 4-bit weights on a CUDA device (or under TRITON_INTERPRET=1
for tests).

Checkpoints quantized with activation order keep their columns in group order: `in_perm`
(empty = identity) lists, for each stored column, the input feature it belongs to, and the
input is gathered once per call before any path runs.

Mixed precision: rows (`keep_idx`, `keep_rows`, in input-feature order) replace whole output
rows; columns (`keep_cols`, stored column ids, with `keep_colvals` (out, k)) hold input columns
in float16 whose codes are the zero point, so every path computes the packed product (0 in
those columns) plus x[:, keep_cols] @ keep_colvals^T.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .config import QuantConfig
from .packing import pack, unpack
from .quant import dequantize

KERNELS = ("auto", "torch", "int4", "triton")
# buffers whose length is the checkpoint's, not the constructor's (kept rows and columns, the act-order permutation)
VARIABLE = ("keep_idx", "keep_rows", "keep_cols", "keep_colvals", "in_perm")


def _check_ids(ids: Tensor, n: int, what: str) -> None:
    """Refuse ids that are not distinct and in [0, n)."""
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= n or ids.unique().numel() != ids.numel()):
        raise ValueError(f"{what} must be distinct ids in [0, {n})")


class QuantLinear(nn.Module):
    """A linear layer whose weight is stored packed (`qweight`), with `scales` (fp16) and `zeros` (uint8)."""

    def __init__(self, in_features: int, out_features: int, cfg: QuantConfig, bias: bool = False,
                 kernel: str = "auto", scale_dtype: torch.dtype = torch.float16) -> None:
        super().__init__()
        self.in_features, self.out_features, self.cfg = in_features, out_features, cfg
        G = cfg.groups(in_features)
        self.register_buffer("qweight", torch.zeros(out_features, -(-in_features * cfg.bits // 32), dtype=torch.int32))
        self.register_buffer("scales", torch.zeros(out_features, G, dtype=scale_dtype))
        self.register_buffer("zeros", torch.zeros(out_features, G, dtype=torch.uint8))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)
        # rows kept in float16 instead of quantized (outlier rows a wrapper chose to protect); empty by default
        self.register_buffer("keep_idx", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("keep_rows", torch.zeros(0, in_features, dtype=torch.float16))
        # input columns kept in float16 (GPTQ's weak columns, which absorbed the others' error); empty by default
        self.register_buffer("keep_cols", torch.zeros(0, dtype=torch.int64))
        self.register_buffer("keep_colvals", torch.zeros(out_features, 0, dtype=torch.float16))
        # stored column j holds input feature in_perm[j] (act-order checkpoints); empty = identity
        self.register_buffer("in_perm", torch.zeros(0, dtype=torch.int64))
        if kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {', '.join(map(repr, KERNELS))}, got {kernel!r}")
        self.kernel_request = kernel
        self.kernel = "torch"
        self._weight: Tensor | None = None  # the torch path's float weight, dequantized once
        self._int4: Any = None  # the int4 path's packed form (cpukernel.Int4Pack), built on first use
        self._released = False  # qweight dropped in favour of _int4 or _shared
        self._shared: tuple[Any, int] | None = None  # (cpukernel.SharedInput, this layer's index in it)

    @classmethod
    def from_codes(cls, codes: Tensor, scales: Tensor, zeros: Tensor, cfg: QuantConfig, bias: Tensor | None = None,
                   kernel: str = "auto", in_perm: Tensor | None = None,
                   scale_dtype: torch.dtype = torch.float16) -> QuantLinear:
        """Build a layer from integer codes (out, in) and per-group scales / zeros (out, G)."""
        out_f, in_f = codes.shape
        m = cls(in_f, out_f, cfg, bias is not None, kernel, scale_dtype)
        m.qweight.copy_(pack(codes.cpu(), cfg.bits))
        m.scales.copy_(scales.to(scale_dtype))
        m.zeros.copy_(zeros.to(torch.uint8))
        if bias is not None:
            m.bias.copy_(bias.detach().float())
        if in_perm is not None:
            m.in_perm = in_perm.to(torch.int64).cpu()
        m.choose_kernel(build=True)
        return m

    def choose_kernel(self, build: bool = False) -> str:
        """Pick the compute path once: triton on CUDA, the int4 kernel for 4-bit on CPU, else torch.

        With `build`, the int4 path's packed form is made now (a loaded model then holds its
        serving form from the start); otherwise at the first call.
        """
        from . import cpukernel
        from .kernels import triton_usable

        want = self.kernel_request
        dev = self.scales.device
        tri = self.cfg.bits in (3, 4) and triton_usable(dev)
        i4 = dev.type == "cpu" and cpukernel.usable(self.out_features, self.in_features,
                                                    self.cfg.group(self.in_features), self.cfg.bits)
        if want == "triton" and not tri:
            raise RuntimeError(f"the triton kernel needs 3- or 4-bit weights on a CUDA device (or TRITON_INTERPRET=1); "
                               f"this layer has {self.cfg.bits} bits on {dev}")
        if want == "int4" and not i4:
            raise RuntimeError(f"the int4 CPU kernel needs 4-bit weights on CPU, out_features divisible by 16 and groups "
                               f"of 32/64/128/256 (a short last group too); this layer: {self.cfg.bits} bits, "
                               f"({self.out_features}, {self.in_features}), group {self.cfg.group_size}, on {dev}")
        if want == "auto":
            # the interpreter is for testing the triton kernel, never chosen for serving on CPU
            want = "triton" if tri and dev.type == "cuda" else "int4" if i4 else "torch"
        if want != "int4" and self._released:
            self._restore()
        self.kernel = want
        if want == "int4" and self._int4 is None and self._shared is None and build:
            self._pack_int4()
        return want

    def _pack_int4(self) -> None:
        """Build the int4 kernel's packed form and release the bit stream (one packed copy, not two)."""
        from .cpukernel import Int4Pack

        self._int4 = Int4Pack(self.codes(), self.scales, self.zeros, self.cfg.group(self.in_features))
        self.qweight, self._released = torch.zeros(0, dtype=torch.int32), True

    def share(self, shared: Any, index: int) -> None:
        """Compute through rows `index` of a packed form shared with the layers reading the same input."""
        if self.kernel != "int4" or self.in_perm.numel():
            raise RuntimeError("only a layer on the int4 kernel without an input permutation can share a packed form")
        self._shared, self._int4 = (shared, index), None
        self.qweight, self._released = torch.zeros(0, dtype=torch.int32), True

    def _restore(self) -> None:
        """Rebuild the bit-stream qweight from the int4 packed form (own or shared); the layer shares no more."""
        self.qweight = pack(self.codes(), self.cfg.bits)
        self._released, self._shared = False, None

    def codes(self) -> Tensor:
        """Return the unpacked integer codes (out, in), in stored column order."""
        if self._shared is not None:
            return self._shared[0].codes(self._shared[1])
        if self._released:
            return self._int4.codes()
        return unpack(self.qweight, self.cfg.bits, self.in_features)

    def kernel_tensors(self) -> list[Tensor]:
        """Return the tensors the compute path holds besides the buffers (the int4 packed form, own or shared)."""
        if self._shared is not None:
            return self._shared[0].pack.tensors()
        return self._int4.tensors() if self._int4 is not None else []

    def dequantized(self) -> Tensor:
        """Return the float32 weight (out, in) in input-feature order, kept rows and columns included."""
        w = dequantize(self.codes(), self.scales, self.zeros, self.cfg)
        if self.keep_cols.numel():
            w[:, self.keep_cols] = self.keep_colvals.float()
        if self.in_perm.numel():
            w = w[:, torch.argsort(self.in_perm)]
        if self.keep_idx.numel():
            w[self.keep_idx] = self.keep_rows.float()
        return w

    def keep(self, rows: Tensor, values: Tensor) -> None:
        """Store `rows` of the weight as float16 `values` (len(rows), in) instead of their quantized codes."""
        rows = torch.as_tensor(rows, dtype=torch.int64).reshape(-1).cpu()
        if values.shape != (rows.numel(), self.in_features):
            raise ValueError(f"kept rows need values of shape ({rows.numel()}, {self.in_features}), got {tuple(values.shape)}")
        _check_ids(rows, self.out_features, "kept rows")
        self.keep_idx = rows.to(self.scales.device)
        self.keep_rows = values.detach().to(self.scales.device, torch.float16)
        self._weight = None

    def keep_columns(self, cols: Tensor, values: Tensor) -> None:
        """Hold stored columns `cols` as float16 `values` (out, len(cols)); their codes become the group's zero point."""
        cols = torch.as_tensor(cols, dtype=torch.int64).reshape(-1).cpu().clone()  # its own tensor: layers sharing one are not tied on save
        if values.shape != (self.out_features, cols.numel()):
            raise ValueError(f"kept columns need values of shape ({self.out_features}, {cols.numel()}), "
                             f"got {tuple(values.shape)}")
        _check_ids(cols, self.in_features, "kept columns")
        codes, zero = self.codes(), self._column_zeros(cols)
        if not torch.equal(codes[:, cols], zero):
            codes[:, cols] = zero
            self.qweight, self._released, self._int4, self._shared = pack(codes, self.cfg.bits), False, None, None
        self.keep_cols = cols.to(self.scales.device)
        self.keep_colvals = values.detach().to(self.scales.device, torch.float16)
        self._weight = None

    def _column_zeros(self, cols: Tensor) -> Tensor:
        return self.zeros.long().cpu()[:, cols // self.cfg.group(self.in_features)]

    def check_kept_columns(self, where: str) -> None:
        """Refuse kept columns whose codes are not the zero point (the packed paths would count them twice)."""
        if not self.keep_cols.numel():
            return
        cols = self.keep_cols.cpu()
        if self.keep_colvals.shape != (self.out_features, cols.numel()):
            raise ValueError(f"{where}.keep_colvals has shape {tuple(self.keep_colvals.shape)}, expected "
                             f"({self.out_features}, {cols.numel()}) for {cols.numel()} kept columns")
        _check_ids(cols, self.in_features, f"{where}.keep_cols")
        if not torch.equal(self.codes()[:, cols], self._column_zeros(cols)):
            raise ValueError(f"{where}: the codes of the kept columns are not their group's zero point; "
                             f"the file was not written by mdq or was altered")

    def _apply(self, fn: Any, recurse: bool = True) -> QuantLinear:
        if self._released:
            self._restore()  # the packed CPU form cannot move; the bit stream can
        out = super()._apply(fn, recurse)
        self._weight, self._int4, self._shared = None, None, None
        self.choose_kernel()  # moved to another device: the path is chosen again, once
        return out

    def _save_to_state_dict(self, destination: dict[str, Any], prefix: str, keep_vars: bool) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self._released:
            destination[prefix + "qweight"] = pack(self.codes(), self.cfg.bits)

    def _load_from_state_dict(self, state_dict: dict[str, Tensor], prefix: str, *args: Any, **kwargs: Any) -> None:
        self._weight, self._int4, self._shared, self._released = None, None, None, False  # new weights: caches are stale
        if self.qweight.numel() == 0:
            self.qweight = torch.zeros(self.out_features, -(-self.in_features * self.cfg.bits // 32), dtype=torch.int32)
        for name in VARIABLE:
            if prefix + name in state_dict:
                setattr(self, name, torch.empty_like(state_dict[prefix + name], device=self.scales.device))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """Return x @ W^T + b through the chosen path."""
        if self.in_perm.numel():
            x = x.index_select(-1, self.in_perm)
        if self.kernel == "torch":
            # dequantize once, then matmul: unpacking on every call would cost more than the matmul itself on CPU
            if self._weight is None or self._weight.dtype != x.dtype:
                self._weight = dequantize(self.codes(), self.scales, self.zeros, self.cfg).to(x.dtype)
                if self.keep_cols.numel():
                    self._weight[:, self.keep_cols] = self.keep_colvals.to(x.dtype)
                if self.keep_idx.numel():
                    self._weight[self.keep_idx] = self.keep_rows.to(x.dtype)[:, self.in_perm] \
                        if self.in_perm.numel() else self.keep_rows.to(x.dtype)
            return nn.functional.linear(x, self._weight, self.bias)
        flat = x.reshape(-1, self.in_features)
        if self.kernel == "int4" and self._shared is not None:
            y = self._shared[0].output(self._shared[1], x, flat, x.dtype)
        elif self.kernel == "int4":
            if self._int4 is None:  # new weights were loaded since the path was chosen
                self._pack_int4()
            y = self._int4.matmul(flat)
        else:
            from .kernels import dequant_matmul

            y = dequant_matmul(flat, self.qweight, self.scales, self.zeros, self.cfg)
        y = y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)
        if self.keep_cols.numel():
            y = y + nn.functional.linear(x.index_select(-1, self.keep_cols), self.keep_colvals.to(x.dtype))
        if self.keep_idx.numel():
            rows = self.keep_rows.to(x.dtype)
            y[..., self.keep_idx] = nn.functional.linear(x, rows[:, self.in_perm] if self.in_perm.numel() else rows)
        return y + self.bias.to(y.dtype) if self.bias is not None else y

    def extra_repr(self) -> str:
        return (f"in={self.in_features}, out={self.out_features}, bits={self.cfg.bits}, "
                f"group={self.cfg.group_size}, sym={self.cfg.sym}, kernel={self.kernel}")
