"""The Hugging Face GPTQ checkpoint layout (AutoGPTQ / gptqmodel / transformers / vLLM): export and import.

Per quantized linear layer `L` (W of shape (out, in), b bits, G = ceil(in / group) groups):

    L.qweight  int32 (in * b / 32, out)   codes packed along the input dimension, as one
                                          little-endian bit stream per output column: code k
                                          at bits [k*b, (k+1)*b) (2/4/8 bits: 32/b codes per
                                          word; 3 bits: 32 codes in 3 words, crossing words)
    L.qzeros   int32 (G, out * b / 32)    zero points packed the same way along the output dim
    L.scales   float16 (G, out)
    L.g_idx    int32 (in,)                the group of each input column (act-order: permuted)
    L.bias     float16 (out,)             when the layer has one

W[o, k] = scales[g, o] * (q[o, k] - z[g, o]) with g = g_idx[k]. The zero-point convention is
the trap: `checkpoint_format: "gptq"` (v1, AutoGPTQ's) stores z - 1 in qzeros (so a zero of 0
cannot be stored), `"gptq_v2"` stores z itself. We always write `checkpoint_format` in
`quantization_config`, choose v1 for symmetric and v2 for asymmetric checkpoints, and on import check the declared
convention against the data: for symmetric checkpoints z must be exactly 2^(b-1); for
asymmetric ones at up to 4 bits, weights are centred on their zero point, so the mean of q - z
over a layer is near 0 under the right convention and near +-1 under the wrong one (at 8 bits a
step is too small a part of the range for that mean to tell, and the check is skipped).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from attrs import frozen
from torch import Tensor, nn

from .config import BITS, QuantConfig
from .packing import pack, unpack
from .qlinear import QuantLinear

FORMATS = ("gptq", "gptq_v2")


@frozen
class GPTQSpec:
    """What a GPTQ quantization_config says: bits, group size, sym, desc_act and the zero-point convention."""

    bits: int
    group_size: int
    sym: bool
    desc_act: bool
    checkpoint_format: str

    @property
    def zero_offset(self) -> int:
        """What is added to a stored zero to get z: 1 for v1, 0 for v2."""
        return 1 if self.checkpoint_format == "gptq" else 0

    def to_json(self) -> dict[str, Any]:
        """Return the quantization_config written to config.json."""
        conv = ("v1: qzeros hold zero_point - 1" if self.zero_offset else "v2: qzeros hold zero_point")
        return {"quant_method": "gptq", "bits": self.bits, "group_size": self.group_size, "desc_act": self.desc_act,
                "sym": self.sym, "checkpoint_format": self.checkpoint_format, "pack_dtype": "int32", "lm_head": False,
                "true_sequential": True, "meta": {"quantizer": ["mdq:0.1.0"], "zero_point": conv}}

    @classmethod
    def from_json(cls, data: Any, where: str) -> GPTQSpec:
        """Read a quantization_config, refusing what this reader cannot take (naming `where`)."""
        if not isinstance(data, dict):
            raise ValueError(f"{where}: quantization_config must be an object, got {type(data).__name__}")
        method = data.get("quant_method", data.get("method"))
        if method != "gptq":
            raise ValueError(f"{where}: quant_method {method!r} is not supported here; mdq reads 'gptq' and "
                             f"'compressed-tensors' checkpoints")
        bits = data.get("bits")
        if isinstance(bits, bool) or bits not in BITS:
            raise ValueError(f"{where}: bits {bits!r} is not supported; mdq reads GPTQ checkpoints of {BITS} bits")
        group = data.get("group_size", 128)
        if isinstance(group, bool) or not isinstance(group, int) or (group <= 0 and group != -1):
            raise ValueError(f"{where}: group_size {group!r} must be a positive integer or -1")
        fmt = data.get("checkpoint_format", data.get("format", "gptq"))
        if fmt not in FORMATS:
            raise ValueError(f"{where}: checkpoint_format {fmt!r} is not supported; mdq reads {', '.join(FORMATS)} "
                             f"(convert other kernels' layouts, e.g. marlin, back to gptq first)")
        return cls(bits, group, bool(data.get("sym", True)), bool(data.get("desc_act", False)), fmt)


def layer_tensors(q: QuantLinear, spec: GPTQSpec) -> dict[str, Tensor]:
    """Return one layer's tensors in the GPTQ layout (names without the layer prefix)."""
    b, out_f, in_f = q.cfg.bits, q.out_features, q.in_features
    if (in_f * b) % 32 or (out_f * b) % 32:
        raise ValueError(f"the GPTQ layout needs in_features * bits and out_features * bits divisible by 32; "
                         f"this layer is ({out_f}, {in_f}) at {b} bits")
    if q.keep_idx.numel() or q.keep_cols.numel():
        raise ValueError("the GPTQ layout has no place for rows or columns kept in float16; export this model in "
                         "mdq's format")
    g = q.cfg.group(in_f)
    codes = q.codes()  # (out, in), stored column order
    gidx = torch.arange(in_f) // g
    if q.in_perm.numel():  # stored column j is input feature in_perm[j]
        feat = torch.empty_like(codes)
        feat[:, q.in_perm] = codes
        codes = feat
        g_feat = torch.empty_like(gidx)
        g_feat[q.in_perm] = gidx
        gidx = g_feat
    z = q.zeros.to(torch.int64).t() - spec.zero_offset  # (G, out)
    if int(z.min()) < 0 or int(z.max()) > 2 ** b - 1:
        raise ValueError(f"zero points outside [{spec.zero_offset}, {2 ** b - 1 + spec.zero_offset}] cannot be stored as "
                         f"{spec.checkpoint_format}; write gptq_v2")
    out = {"qweight": pack(codes, b).t().contiguous(), "qzeros": pack(z, b), "scales": q.scales.t().half().contiguous(),
           "g_idx": gidx.to(torch.int32)}
    if q.bias is not None:
        out["bias"] = q.bias.half()
    return out


def save_gptq(model: nn.Module, out_dir: str | Path, tokenizer: Any = None, checkpoint_format: str = "auto") -> Path:
    """Write an mdq-quantized model as a GPTQ checkpoint (model.safetensors + config.json); return the directory."""
    from safetensors.torch import save_file

    meta = getattr(model, "mdq_quant", None)
    if meta is None:
        raise ValueError("this model was not quantized by mdq (no mdq_quant metadata); run quantize_model first")
    cfg = QuantConfig.from_json(meta["config"])
    layers = {n: model.get_submodule(n) for n in meta["modules"]}
    if checkpoint_format == "auto":
        # v1 for symmetric checkpoints (every reader takes it); v2 for asymmetric ones, where v1's
        # "zero - 1" is the known trap (gptqmodel refuses asymmetric v1 it did not write itself)
        checkpoint_format = "gptq" if cfg.sym else "gptq_v2"
    if checkpoint_format not in FORMATS:
        raise ValueError(f"checkpoint_format must be 'auto' or one of {FORMATS}, got {checkpoint_format!r}")
    desc_act = any(q.in_perm.numel() and not torch.equal(q.in_perm, torch.arange(q.in_features)) for q in layers.values())
    spec = GPTQSpec(cfg.bits, cfg.group_size, cfg.sym, bool(desc_act), checkpoint_format)
    tensors: dict[str, Tensor] = {}
    for name, q in layers.items():
        for k, v in layer_tensors(q, spec).items():
            tensors[f"{name}.{k}"] = v
    skip = tuple(f"{n}." for n in layers)
    tied = getattr(model.config, "tie_word_embeddings", False)
    for name, t in model.state_dict().items():
        if name.startswith(skip) or (tied and name == "lm_head.weight"):
            continue
        tensors[name] = t.half() if t.is_floating_point() else t
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})
    conf = model.config.to_dict()
    conf["quantization_config"] = spec.to_json()
    conf["dtype"] = "float16"
    (out / "config.json").write_text(json.dumps(conf, indent=2))
    (out / "quantize_config.json").write_text(json.dumps(spec.to_json(), indent=2))  # AutoGPTQ reads this file
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def unpack_layer(t: dict[str, Tensor], spec: GPTQSpec, out_f: int, in_f: int, where: str) -> dict[str, Tensor]:
    """Check one layer's GPTQ tensors against the layout and return codes (out, in), zeros and scales (out, G), g_idx."""
    b = spec.bits
    g = in_f if spec.group_size == -1 else spec.group_size
    G = math.ceil(in_f / g)
    want = {"qweight": ((in_f * b // 32, out_f), (torch.int32,)), "qzeros": ((G, out_f * b // 32), (torch.int32,)),
            "scales": ((G, out_f), (torch.float16, torch.bfloat16, torch.float32)), "g_idx": ((in_f,), (torch.int32, torch.int64))}
    for k, (shape, dtypes) in want.items():
        if k not in t:
            if k == "g_idx":
                continue
            raise ValueError(f"{where}.{k} is missing")
        if tuple(t[k].shape) != shape or t[k].dtype not in dtypes:
            raise ValueError(f"{where}.{k} is {t[k].dtype} {tuple(t[k].shape)}; a {b}-bit GPTQ layer of shape "
                             f"({out_f}, {in_f}) with group {spec.group_size} needs {dtypes[0]} {shape}")
    codes = unpack(t["qweight"].t().contiguous(), b, in_f)  # (out, in) in input-feature order
    zeros = unpack(t["qzeros"], b, out_f).t() + spec.zero_offset  # (out, G)
    gidx = t["g_idx"].long() if "g_idx" in t else torch.arange(in_f) // g
    if int(gidx.min()) < 0 or int(gidx.max()) >= G:
        raise ValueError(f"{where}.g_idx has groups outside [0, {G})")
    _check_zero_convention(codes, zeros, gidx, spec, where)
    return {"codes": codes, "zeros": zeros, "scales": t["scales"].t().contiguous(), "g_idx": gidx}


def _check_zero_convention(codes: Tensor, zeros: Tensor, gidx: Tensor, spec: GPTQSpec, where: str) -> None:
    """Refuse a layer whose data contradicts the declared v1 / v2 zero-point convention."""
    other = "gptq_v2" if spec.checkpoint_format == "gptq" else "gptq"
    shift = 1 if spec.zero_offset else -1  # z under the other convention = z - shift
    if spec.sym:
        mid = 2 ** (spec.bits - 1)
        if not bool((zeros == mid).all()):
            hint = f"; they equal {mid} under {other!r}" if bool((zeros - shift == mid).all()) else ""
            raise ValueError(f"{where}.qzeros: a symmetric checkpoint needs every zero point at {mid}, but under the "
                             f"declared checkpoint_format {spec.checkpoint_format!r} they range over "
                             f"{int(zeros.min())}..{int(zeros.max())}{hint}; fix checkpoint_format in config.json")
        return
    if spec.bits > 4:
        return  # one step is under 1% of the range: a layer's mean weight is not a reliable witness of it
    centre = float((codes - zeros[:, gidx]).float().mean())
    if abs(centre) > 0.5 and abs(centre + shift) < 0.25:
        raise ValueError(f"{where}.qzeros: under the declared checkpoint_format {spec.checkpoint_format!r} the weights "
                         f"sit {centre:+.2f} quantization steps off their zero points on average, and within "
                         f"{abs(centre + shift):.2f} under {other!r}; the file's zero convention contradicts its "
                         f"config; fix checkpoint_format in config.json")


def group_order(gidx: Tensor, g: int) -> Tensor | None:
    """Return the column order that makes act-order groups contiguous (None if they already are)."""
    in_f = gidx.numel()
    if torch.equal(gidx, torch.arange(in_f) // g):
        return None
    perm = torch.argsort(gidx, stable=True)  # stored column j = input feature perm[j]
    if not torch.equal(gidx[perm], torch.arange(in_f) // g):
        raise ValueError(f"g_idx puts {torch.bincount(gidx).tolist()} columns in the groups; mdq needs {g} per "
                         f"group (the last may be short)")
    return perm


def to_quantlinear(u: dict[str, Tensor], spec: GPTQSpec, bias: Tensor | None, in_f: int) -> QuantLinear:
    """Build a QuantLinear from an unpacked GPTQ layer (act-order columns gathered into group order)."""
    cfg = QuantConfig(spec.bits, spec.group_size, spec.sym)
    perm = group_order(u["g_idx"], in_f if spec.group_size == -1 else spec.group_size)
    codes = u["codes"] if perm is None else u["codes"][:, perm]
    return QuantLinear.from_codes(codes, u["scales"], u["zeros"], cfg, bias, in_perm=perm, scale_dtype=u["scales"].dtype)


def load_gptq(path: str | Path) -> nn.Module:
    """Load a GPTQ checkpoint directory (v1 or v2 zeros, with or without act-order) as an mdq model."""
    from transformers import AutoConfig

    from .layerwise import give_back_memory
    from .skeleton import empty_model, finish, replace_module, set_tensor
    from .st import checkpoint_tensors, load_tensors

    p = Path(path)
    conf = json.loads((p / "config.json").read_text())
    qc = conf.get("quantization_config")
    where = str(p / "config.json")
    if qc is None and (p / "quantize_config.json").is_file():
        qc, where = json.loads((p / "quantize_config.json").read_text()), str(p / "quantize_config.json")
    spec = GPTQSpec.from_json(qc, where)
    index = checkpoint_tensors(p)  # every file's header checked (a truncated file fails here, named)
    model = empty_model(AutoConfig.from_pretrained(p))
    prefixes = sorted(n[: -len(".qweight")] for n in index if n.endswith(".qweight"))
    if not prefixes:
        raise ValueError(f"{p} declares GPTQ but holds no *.qweight tensor")
    shapes = {}
    for name in prefixes:
        f = index[f"{name}.qweight"][0].name
        try:
            layer = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"{f}: {name}.qweight belongs to no layer of this {conf.get('model_type')} model") from None
        out_f, in_f = layer.weight.shape
        qw = index[f"{name}.qweight"][1]["shape"]
        if qw != [in_f * spec.bits // 32, out_f]:
            raise ValueError(f"{f}: {name}.qweight has shape {qw}; the model's layer ({out_f}, {in_f}) at "
                             f"{spec.bits} bits needs {[in_f * spec.bits // 32, out_f]}")
        shapes[name] = (out_f, in_f, layer.bias is not None)
    layers = {}
    for name, (out_f, in_f, has_bias) in shapes.items():  # one layer unpacked at a time: only packed ones are kept
        keys = [f"{name}.{k}" for k in ("qweight", "qzeros", "scales", "g_idx", "bias") if f"{name}.{k}" in index]
        t = {k.rsplit(".", 1)[1]: v for k, v in load_tensors(index, keys).items()}
        where = f"{index[f'{name}.qweight'][0].name}: {name}"
        layers[name] = to_quantlinear(unpack_layer(t, spec, out_f, in_f, where), spec,
                                      t.get("bias") if has_bias else None, in_f)
        del t
    for name, q in layers.items():  # every layer passed its checks: only now is the model assembled
        replace_module(model, name, q)
    rest = [n for n in index if not n.startswith(tuple(f"{q}." for q in prefixes))]
    for name, v in load_tensors(index, rest).items():
        set_tensor(model, name, v)
    model = finish(model, p)
    give_back_memory()
    model.mdq_quant = {"backend": "gptq-checkpoint", "config": QuantConfig(spec.bits, spec.group_size, spec.sym).to_json(),
                       "modules": prefixes, "source_format": spec.checkpoint_format}
    return model
