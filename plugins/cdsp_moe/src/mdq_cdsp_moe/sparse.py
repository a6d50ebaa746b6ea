"""Block-sparse inference: each expert computes only on its k picked basis dims.

After training, the masks are fixed, so expert i is just two small matrices U[:, S_i] (d x k)
and V[S_i, :] (k x d). With hard routing a row costs B*k*d multiply-adds instead of B*N*d:
FLOPs fall by k/N, and each expert keeps full rank k on its block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .layer import CDSPMoE


class SparseCDSP:
    """A frozen, gathered copy of a trained CDSPMoE for inference."""

    def __init__(self, layer: CDSPMoE) -> None:
        with torch.no_grad():
            idx = layer.picked()                                        # (E, k)
            self.U = torch.stack([layer.U[:, i] for i in idx]).contiguous()   # (E, d, k)
            self.V = torch.stack([layer.V[i, :] for i in idx]).contiguous()   # (E, k, d)
        self.layer = layer
        self.E = layer.cfg.n_experts

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, task: torch.Tensor, *, hard_route: bool = True) -> torch.Tensor:
        """Same result as layer(x, task, hard_route=...) to float tolerance, computing only picked dims."""
        g = self.layer.gates(x, task)
        shape = x.shape
        x2, g2 = x.reshape(-1, shape[-1]), g.reshape(-1, self.E)
        act = self.layer.act
        out = torch.empty_like(x2) if hard_route else x2.clone()
        if hard_route:
            # sort rows by expert once: each expert then works on one contiguous slice
            choice = g2.argmax(-1)
            order = torch.argsort(choice)
            counts = torch.bincount(choice, minlength=self.E).tolist()
            xs = x2[order]
            ys = torch.empty_like(xs)
            start = 0
            for e, c in enumerate(counts):
                if c:
                    blk = xs[start:start + c]
                    ys[start:start + c] = blk + act(blk @ self.U[e]) @ self.V[e]
                    start += c
            out[order] = ys
        else:
            for e in range(self.E):
                out += g2[:, e:e + 1] * (act(x2 @ self.U[e]) @ self.V[e])
        return out.reshape(shape)

    def flops_ratio(self) -> float:
        """Return multiply-adds of hard-routed sparse inference over dense: k / N."""
        return self.layer.cfg.k / self.layer.cfg.n_basis


def dense_reference(layer: CDSPMoE, x: torch.Tensor, task: torch.Tensor, hard_route: bool = True) -> torch.Tensor:
    """The dense masked computation the sparse path must equal (the test oracle)."""
    with torch.no_grad():
        g = layer.gates(x, task)
        if hard_route:
            g = F.one_hot(g.argmax(-1), layer.cfg.n_experts).to(x.dtype)
        m = torch.zeros_like(layer.alpha).scatter_(1, layer.picked(), 1.0)
        return x + (layer.act(x @ layer.U) * (g @ m)) @ layer.V
