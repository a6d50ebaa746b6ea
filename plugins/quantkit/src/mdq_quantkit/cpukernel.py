"""4-bit weights kept packed on CPU and multiplied by torch's int4 CPU kernel.

torch's `_weight_int4pack_mm_for_cpu(x, packed, group, scales_and_zeros)` computes
x @ W^T with W[n, k] = (q[n, k] - 8) * s[g, n] + m[g, n] for g = k // group; our codes
dequantize as s * (q - z), so m = s * (8 - z). The kernel takes groups of 32, 64, 128 or 256
columns that divide K, and N divisible by 16. A layout it cannot take as it is (SmolLM2's 576
inputs in groups of 128 = 4 x 128 + a short group of 64, or one group per row) runs with the
largest of those sizes that divides both the group and K, each group's scale and offset
repeated over its pieces: the same weights, one kernel call (576 with groups of 128 runs as
9 groups of 64; cutting the layer into two column ranges instead cost a second call, two
copies and an add per layer, which at one token per step was most of the layer's time).
Activations, scales and offsets are bfloat16 (the kernel's vectorized path; float32 input
takes a slow scalar path), accumulation is float32.

`SharedInput` packs layers that read the same input (q/k/v, gate/up) as one matrix: the first
of them to run computes every member's output in one call, the others take their rows.

The packed layout is torch's own (blocked, not documented as stable), so codes are never read
from it directly: `codes()` recovers them exactly by multiplying the identity with unit scales
and offset 8 (each output is one code, an integer bfloat16 holds exactly).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import torch
from torch import Tensor

GROUPS = (32, 64, 128, 256)


def available() -> bool:
    """Return True when this torch has the int4 CPU kernel."""
    return hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu") and \
        hasattr(torch.ops.aten, "_convert_weight_to_int4pack_for_cpu")


def kernel_group(in_features: int, group: int) -> int | None:
    """Return the group size the kernel runs this layout with (the largest it takes dividing both), or None."""
    return next((g for g in reversed(GROUPS) if group % g == 0 and in_features % g == 0), None)


def usable(out_features: int, in_features: int, group: int, bits: int) -> bool:
    """Return True when a layer of this shape can run on the int4 CPU kernel."""
    return bits == 4 and available() and out_features % 16 == 0 and kernel_group(in_features, group) is not None


class Int4Pack:
    """A 4-bit layer in the kernel's packed form: packed codes, (G, N, 2) scales and offsets, the kernel's group."""

    def __init__(self, codes: Tensor, scales: Tensor, zeros: Tensor, group: int) -> None:
        out_f, in_f = codes.shape
        kg = kernel_group(in_f, group)
        if kg is None or out_f % 16:
            raise ValueError(f"the int4 CPU kernel cannot take a ({out_f}, {in_f}) layer with groups of {group}")
        self.out_features, self.in_features, self.group = out_f, in_f, kg
        src = torch.arange(in_f // kg) * kg // group  # the stored group each kernel group lies in
        s = scales[:, src].float().t()  # (G, N)
        z = zeros[:, src].float().t()
        self.sz = torch.stack([s, s * (8 - z)], -1).to(torch.bfloat16).contiguous()  # (G, N, 2)
        self.packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes.to(torch.int32).contiguous(), 1)

    def matmul_bf16(self, xb: Tensor) -> Tensor:
        """Return xb (M, K) bfloat16 @ W^T (K, N) as bfloat16 (float32 accumulation)."""
        return torch.ops.aten._weight_int4pack_mm_for_cpu(xb, self.packed, self.group, self.sz)

    def matmul(self, x: Tensor) -> Tensor:
        """Return x (M, K) @ W^T (K, N) in float32."""
        return self.matmul_bf16(x.to(torch.bfloat16)).float()

    def codes(self) -> Tensor:
        """Return the integer codes (out, in) held in the packed form, recovered exactly."""
        eye = torch.eye(self.in_features, dtype=torch.bfloat16)
        G, N = self.sz.shape[:2]
        unit = torch.stack([torch.ones(G, N), torch.full((G, N), 8.0)], -1).to(torch.bfloat16)
        out = torch.ops.aten._weight_int4pack_mm_for_cpu(eye, self.packed, self.group, unit)  # (in, out)
        return out.float().round().t().long()

    def tensors(self) -> list[Tensor]:
        """Return the tensors the packed form holds (for memory accounting)."""
        return [self.packed, self.sz]

    def nbytes(self) -> int:
        """Return the bytes the packed form holds."""
        return sum(t.numel() * t.element_size() for t in self.tensors())


class SharedInput:
    """Layers that read the same input, packed as one (N = the sum of theirs): one kernel call serves them all.

    Member i owns output columns `ranges[i]`. The first member called with an input computes
    the whole product and keeps it, with the input, until every member has taken its rows;
    a member called with another input (another tensor object, or the same one modified in
    place since), or a second time, computes again, so a caller that does not follow the
    expected order gets the same results, only slower. The kept product is per thread. (Tensors
    made under `torch.inference_mode` keep no version counter: for them only the object is compared.)
    """

    def __init__(self, codes: Sequence[Tensor], scales: Sequence[Tensor], zeros: Sequence[Tensor], group: int) -> None:
        self.pack = Int4Pack(torch.cat(list(codes)), torch.cat(list(scales)), torch.cat(list(zeros)), group)
        ends = torch.tensor([c.shape[0] for c in codes]).cumsum(0).tolist()
        self.ranges = list(zip([0, *ends[:-1]], ends))
        self._kept = threading.local()

    def output(self, i: int, key: Tensor, x: Tensor, dtype: torch.dtype) -> Tensor:
        """Return member i's output (M, N_i) for x (M, K), a view of `key` (the tensor the layer was called with)."""
        st = self._kept
        version = _version(key)
        if not (getattr(st, "key", None) is key and st.version == version and i not in st.served):
            st.key, st.version, st.served = key, version, set()
            st.y = self.pack.matmul_bf16(x.to(torch.bfloat16))  # (M, N)
        n0, n1 = self.ranges[i]
        y = st.y[:, n0:n1].to(dtype)
        st.served.add(i)
        if len(st.served) == len(self.ranges):  # every member served: let go of the input and the product
            st.key = st.y = None
        return y

    def codes(self, i: int) -> Tensor:
        """Return member i's integer codes (N_i, in), recovered exactly."""
        n0, n1 = self.ranges[i]
        return self.pack.codes()[n0:n1]


def _version(t: Tensor) -> int:
    # inference-mode tensors track no version (reading it raises); -1 then compares equal to itself
    return -1 if t.is_inference() else t._version
