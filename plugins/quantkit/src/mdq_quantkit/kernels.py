"""Triton kernels: dequantize packed 3/4-bit weights, and a fused dequant-matmul.

They read the bit-stream layout of `packing.py`. Tests run them on CPU with TRITON_INTERPRET=1
(set before this module is imported); at runtime on CPU the torch path is used instead.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from .config import QuantConfig

try:
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - triton ships with CUDA builds of torch and as its own wheel
    triton = None


def triton_usable(device: torch.device) -> bool:
    """Return True where the kernels can run: a CUDA device, or any device under TRITON_INTERPRET=1."""
    if triton is None:
        return False
    return os.environ.get("TRITON_INTERPRET") == "1" or device.type == "cuda"


if triton is not None:
    @triton.jit
    def _codes(qw_ptr, rn, rk, N, K, W, sqn, BITS: tl.constexpr):
        # codes of columns rk (rows of the tile) for output rows rn: shape (BK, BN)
        pos = rk * BITS
        word = pos >> 5
        off = (pos & 31).to(tl.uint32)
        ok = (rn[None, :] < N) & (rk[:, None] < K)
        lo = tl.load(qw_ptr + rn[None, :] * sqn + word[:, None], mask=ok, other=0).to(tl.uint32, bitcast=True)
        hi = tl.load(qw_ptr + rn[None, :] * sqn + word[:, None] + 1, mask=ok & (word[:, None] + 1 < W),
                     other=0).to(tl.uint32, bitcast=True)
        offb = off[:, None]
        v = lo >> offb
        v = tl.where(offb + BITS > 32, v | (hi << ((32 - offb) & 31)), v)  # 3-bit codes cross word borders
        return (v & ((1 << BITS) - 1)).to(tl.float32)

    @triton.jit
    def _scale_zero(s_ptr, z_ptr, rn, rk, N, K, GS, ssn, szn):
        g = rk // GS
        ok = (rn[None, :] < N) & (rk[:, None] < K)
        s = tl.load(s_ptr + rn[None, :] * ssn + g[:, None], mask=ok, other=0.0).to(tl.float32)
        z = tl.load(z_ptr + rn[None, :] * szn + g[:, None], mask=ok, other=0).to(tl.float32)
        return s, z

    @triton.jit
    def _dequant_kernel(qw_ptr, s_ptr, z_ptr, out_ptr, N, K, W, GS, sqn, ssn, szn, son,
                        BITS: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
        rn = tl.program_id(0) * BN + tl.arange(0, BN)
        rk = tl.program_id(1) * BK + tl.arange(0, BK)
        code = _codes(qw_ptr, rn, rk, N, K, W, sqn, BITS)
        s, z = _scale_zero(s_ptr, z_ptr, rn, rk, N, K, GS, ssn, szn)
        tl.store(out_ptr + rn[None, :] * son + rk[:, None], (code - z) * s,
                 mask=(rn[None, :] < N) & (rk[:, None] < K))

    @triton.jit
    def _dq_matmul_kernel(x_ptr, qw_ptr, s_ptr, z_ptr, y_ptr, M, N, K, W, GS, sxm, sqn, ssn, szn, sym,
                          BITS: tl.constexpr, BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr):
        rm = tl.program_id(0) * BM + tl.arange(0, BM)
        rn = tl.program_id(1) * BN + tl.arange(0, BN)
        acc = tl.zeros((BM, BN), dtype=tl.float32)
        for k0 in range(0, K, BK):
            rk = k0 + tl.arange(0, BK)
            x = tl.load(x_ptr + rm[:, None] * sxm + rk[None, :], mask=(rm[:, None] < M) & (rk[None, :] < K), other=0.0)
            code = _codes(qw_ptr, rn, rk, N, K, W, sqn, BITS)
            s, z = _scale_zero(s_ptr, z_ptr, rn, rk, N, K, GS, ssn, szn)
            acc += tl.dot(x.to(tl.float32), (code - z) * s)
        tl.store(y_ptr + rm[:, None] * sym + rn[None, :], acc, mask=(rm[:, None] < M) & (rn[None, :] < N))


def _check(qweight: Tensor, cfg: QuantConfig) -> None:
    if triton is None:
        raise RuntimeError("triton is not installed: pip install triton")
    if cfg.bits not in (3, 4):
        raise ValueError(f"the triton kernels handle 3- and 4-bit weights, got {cfg.bits}")


def dequant(qweight: Tensor, scales: Tensor, zeros: Tensor, cfg: QuantConfig, in_features: int) -> Tensor:
    """Return the float32 weight (N, K) dequantized by the triton kernel."""
    _check(qweight, cfg)
    N, K = qweight.shape[0], in_features
    out = torch.empty(N, K, dtype=torch.float32, device=qweight.device)
    BN, BK = 32, 64
    grid = (triton.cdiv(N, BN), triton.cdiv(K, BK))
    _dequant_kernel[grid](qweight, scales, zeros, out, N, K, qweight.shape[1], cfg.group(K), qweight.stride(0),
                          scales.stride(0), zeros.stride(0), out.stride(0), BITS=cfg.bits, BN=BN, BK=BK)
    return out


def dequant_matmul(x: Tensor, qweight: Tensor, scales: Tensor, zeros: Tensor, cfg: QuantConfig) -> Tensor:
    """Return x (M, K) @ dequant(W)^T (K, N) in float32, fused in one triton kernel."""
    _check(qweight, cfg)
    x = x.contiguous()
    M, K = x.shape
    N = qweight.shape[0]
    y = torch.empty(M, N, dtype=torch.float32, device=x.device)
    BM, BN, BK = 16, 64, 64
    grid = (triton.cdiv(M, BM), triton.cdiv(N, BN))
    _dq_matmul_kernel[grid](x, qweight, scales, zeros, y, M, N, K, qweight.shape[1], cfg.group(K), x.stride(0),
                            qweight.stride(0), scales.stride(0), zeros.stride(0), y.stride(0),
                            BITS=cfg.bits, BM=BM, BN=BN, BK=BK)
    return y
