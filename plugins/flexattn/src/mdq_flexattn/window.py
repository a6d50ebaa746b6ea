"""Variable-window causal attention: query t attends to its last L_h[t] positions (itself included).

Built on `torch.nn.attention.flex_attention` with a mask_mod reading a per-position window
tensor; `dense_window_attention` (masked scaled_dot_product_attention) is the test oracle and
the fallback where flex_attention cannot run. Pass `compile=True` to use a compiled flex kernel
(fused on GPU; on CPU it needs a C++ compiler); eager flex_attention materializes the scores.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor, nn


def check_window(window: Tensor, B: int, T: int) -> Tensor:
    """Return the window as a (B, T) long tensor, refusing a wrong shape, dtype or a length < 1."""
    if not isinstance(window, Tensor):
        raise TypeError(f"window must be a tensor of shape (T,) or (B, T), got {type(window).__name__}")
    if window.dtype.is_floating_point or window.dtype == torch.bool:
        raise TypeError(f"window must hold integer lengths, got dtype {window.dtype}")
    if window.dim() == 1 and window.shape[0] == T:
        window = window.unsqueeze(0).expand(B, T)
    elif not (window.dim() == 2 and tuple(window.shape) == (B, T)):
        raise ValueError(f"window has shape {tuple(window.shape)}; expected ({T},) or ({B}, {T}) "
                         f"for queries of shape (B={B}, H, T={T}, D)")
    if T and int(window.min()) < 1:
        raise ValueError(f"window lengths must be >= 1 (a query always sees itself), found {int(window.min())}")
    return window.long()


def _check_qkv(q: Tensor, k: Tensor, v: Tensor) -> None:
    if q.dim() != 4 or k.shape != q.shape or v.shape[:3] != q.shape[:3]:
        raise ValueError(f"q, k, v must be (B, H, T, D) with equal B, H, T; got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")


def window_mask(window: Tensor) -> Tensor:
    """Return the (B, 1, T, T) boolean mask: kv <= q and q - kv < window[b, q]."""
    T = window.shape[-1]
    idx = torch.arange(T, device=window.device)
    dist = idx[:, None] - idx[None, :]  # q - kv
    return ((dist >= 0) & (dist < window[:, :, None])).unsqueeze(1)


def dense_window_attention(q: Tensor, k: Tensor, v: Tensor, window: Tensor) -> Tensor:
    """Reference path: scaled_dot_product_attention with the dense window mask."""
    _check_qkv(q, k, v)
    w = check_window(window, q.shape[0], q.shape[2])
    return nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=window_mask(w.to(q.device)))


_compiled: dict[str, Any] = {}


def flex_window_attention(q: Tensor, k: Tensor, v: Tensor, window: Tensor, *, compile: bool = False) -> Tensor:
    """flex_attention with a block mask built from the window tensor."""
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    _check_qkv(q, k, v)
    B, _H, T, _D = q.shape
    w = check_window(window, B, T).to(q.device)

    def mask_mod(b: Tensor, h: Tensor, q_idx: Tensor, kv_idx: Tensor) -> Tensor:
        return (kv_idx <= q_idx) & (q_idx - kv_idx < w[b, q_idx])

    block = create_block_mask(mask_mod, B, None, T, T, device=q.device.type)
    fn = flex_attention
    if compile:
        fn = _compiled.setdefault("flex", torch.compile(flex_attention, dynamic=False))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="flex_attention called without torch.compile")
        return fn(q, k, v, block_mask=block)


class WindowAttention(nn.Module):
    """Causal attention over per-position windows; flex_attention first, dense SDPA where it cannot run."""

    def __init__(self, backend: str = "auto", compile: bool = False) -> None:
        super().__init__()
        if backend not in ("auto", "flex", "dense"):
            raise ValueError(f"backend must be 'auto', 'flex' or 'dense', got {backend!r}")
        self.backend, self.compile = backend, compile
        self.used: str | None = None  # which path the last call took

    def forward(self, q: Tensor, k: Tensor, v: Tensor, window: Tensor) -> Tensor:
        """Return the attention output (B, H, T, D)."""
        if self.backend == "dense":
            self.used = "dense"
            return dense_window_attention(q, k, v, window)
        try:
            out = flex_window_attention(q, k, v, window, compile=self.compile)
            self.used = "flex"
            return out
        except (ValueError, TypeError):
            raise  # bad input is the caller's to fix, not a reason to fall back
        except Exception as exc:  # flex_attention unavailable for this device / dtype / build
            if self.backend == "flex":
                raise
            warnings.warn(f"flex_attention could not run ({type(exc).__name__}: {exc}); using dense SDPA",
                          RuntimeWarning, stacklevel=2)
            self.used = "dense"
            return dense_window_attention(q, k, v, window)
