"""compressed-tensors checkpoints (what llm-compressor writes and vLLM reads), through the `compressed-tensors` library.

Export: each QuantLinear's dequantized weight, scales and zero points go through the library's
`PackedQuantizationCompressor.compress` (format "pack-quantized": signed codes offset by
2^(b-1) and packed 32/b to an int32 along the input dimension, asymmetric zero points packed
along the output dimension), and the library's `ModelCompressor.update_config` writes
`quantization_config` into config.json. Import: the config is validated by the library's
`QuantizationConfig`, layers are matched to their scheme by its `match_named_modules`, and codes
and zero points are unpacked by its `unpack_from_int32`; the codes become a QuantLinear as they
are, so nothing is re-quantized. The library requires every group to be whole (in_features
divisible by group_size): SmolLM2's 576-wide layers cannot be written with groups of 128.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .config import BITS, QuantConfig
from .qlinear import QuantLinear

METHOD = "compressed-tensors"
FORMAT = "pack-quantized"


def _scheme(cfg: QuantConfig) -> Any:
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme

    group = {"strategy": "channel"} if cfg.group_size == -1 else {"strategy": "group", "group_size": cfg.group_size}
    return QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(num_bits=cfg.bits, type="int",
                                                                           symmetric=cfg.sym, **group))


def layer_tensors(q: QuantLinear, scheme: Any) -> dict[str, Tensor]:
    """Return one layer's compressed tensors (names without the layer prefix), compressed by the library."""
    from compressed_tensors.compressors.pack_quantized import PackedQuantizationCompressor

    if q.in_perm.numel() or q.keep_idx.numel() or q.keep_cols.numel():
        raise ValueError("compressed-tensors export takes layers without act-order permutation or kept rows or columns; "
                         "export this model with --format gptq or mdq")
    half = 2 ** (q.cfg.bits - 1)
    sd = {"weight": q.dequantized(), "weight_scale": q.scales.clone(),
          "weight_zero_point": (q.zeros.to(torch.int16) - half).to(torch.int8)}
    out = dict(PackedQuantizationCompressor.compress(sd, scheme))
    if q.bias is not None:
        out["bias"] = q.bias.half()
    return out


def save_ct(model: nn.Module, out_dir: str | Path, tokenizer: Any = None) -> Path:
    """Write an mdq-quantized model as a compressed-tensors (pack-quantized) checkpoint; return the directory."""
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import QuantizationConfig, QuantizationStatus
    from safetensors.torch import save_file

    meta = getattr(model, "mdq_quant", None)
    if meta is None:
        raise ValueError("this model was not quantized by mdq (no mdq_quant metadata); run quantize_model first")
    cfg = QuantConfig.from_json(meta["config"])
    layers = {n: model.get_submodule(n) for n in meta["modules"]}
    for n, q in layers.items():
        if cfg.group_size != -1 and q.in_features % cfg.group_size:
            raise ValueError(f"compressed-tensors needs group_size to divide every layer's input width; {n} has "
                             f"{q.in_features} inputs and group_size is {cfg.group_size}; quantize with a group size "
                             f"that divides it (e.g. 64) or export with --format gptq")
    scheme = _scheme(cfg)
    tensors: dict[str, Tensor] = {}
    for name, q in layers.items():
        for k, v in layer_tensors(q, scheme).items():
            tensors[f"{name}.{k}"] = v
    skip = tuple(f"{n}." for n in layers)
    tied = getattr(model.config, "tie_word_embeddings", False)
    for name, t in model.state_dict().items():
        if not name.startswith(skip) and not (tied and name == "lm_head.weight"):
            tensors[name] = t.half() if t.is_floating_point() else t
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})
    conf = model.config.to_dict()
    conf["dtype"] = "float16"
    (out / "config.json").write_text(json.dumps(conf, indent=2))
    unquantized = sorted(n for n, m in model.named_modules() if isinstance(m, nn.Linear))
    qc = QuantizationConfig(config_groups={"group_0": scheme}, format=FORMAT, ignore=unquantized,
                            quantization_status=QuantizationStatus.COMPRESSED)
    ModelCompressor(quantization_config=qc).update_config(str(out))
    if tokenizer is not None:
        tokenizer.save_pretrained(out)
    return out


def read_config(qc: Any, where: str) -> Any:
    """Validate a compressed-tensors quantization_config with the library; refuse what mdq cannot hold."""
    from compressed_tensors.quantization import QuantizationConfig

    if not isinstance(qc, dict) or qc.get("quant_method") != METHOD:
        raise ValueError(f"{where}: not a compressed-tensors quantization_config")
    try:
        conf = QuantizationConfig.model_validate({k: v for k, v in qc.items() if k != "quant_method"})
    except Exception as exc:  # pydantic's ValidationError: say where, keep its text
        raise ValueError(f"{where}: quantization_config is not valid compressed-tensors ({exc})") from None
    for gname, sch in conf.config_groups.items():
        fmt = getattr(sch, "format", None) or conf.format
        w = sch.weights
        bad = None
        if fmt != FORMAT:
            bad = f"format {fmt!r} (mdq reads {FORMAT!r})"
        elif w is None or str(getattr(w.type, "value", w.type)) != "int":
            bad = "weights that are not integer"
        elif w.num_bits not in BITS:
            bad = f"{w.num_bits}-bit weights (mdq reads {BITS})"
        elif sch.input_activations is not None or sch.output_activations is not None:
            bad = "quantized activations (mdq reads weight-only checkpoints)"
        elif str(getattr(w.strategy, "value", w.strategy)) not in ("group", "channel"):
            bad = f"strategy {w.strategy!r} (mdq reads group and channel)"
        if bad:
            raise ValueError(f"{where}: config group {gname!r} has {bad}")
    return conf


def load_ct(path: str | Path) -> nn.Module:
    """Load a compressed-tensors pack-quantized checkpoint directory as an mdq model (codes kept packed)."""
    from compressed_tensors.compressors.pack_quantized import unpack_from_int32
    from compressed_tensors.utils import match_named_modules
    from transformers import AutoConfig

    from .hf_gptq import group_order
    from .layerwise import give_back_memory
    from .skeleton import empty_model, finish, replace_module, set_tensor
    from .st import checkpoint_tensors, load_tensors

    p = Path(path)
    conf = read_config(json.loads((p / "config.json").read_text()).get("quantization_config"), str(p / "config.json"))
    index = checkpoint_tensors(p)
    model = empty_model(AutoConfig.from_pretrained(p))
    plan: dict[str, tuple[QuantConfig, tuple[int, int], bool]] = {}
    for sch in conf.config_groups.values():
        w = sch.weights
        group = -1 if str(getattr(w.strategy, "value", w.strategy)) == "channel" else int(w.group_size)
        for name, mod in match_named_modules(model, sch.targets, conf.ignore or []):
            if isinstance(mod, nn.Linear):
                plan[name] = (QuantConfig(w.num_bits, group, bool(w.symmetric)), tuple(mod.weight.shape), mod.bias is not None)
    if not plan:
        raise ValueError(f"{p / 'config.json'}: no linear layer of the model matches the quantization config's targets")
    layers = {}
    for name, (cfg, (out_f, in_f), has_bias) in plan.items():  # every layer checked before the model is assembled
        b, G = cfg.bits, cfg.groups(in_f)
        want = {"weight_packed": (out_f, -(-in_f * b // 32)), "weight_scale": (out_f, G), "weight_shape": (2,)}
        if not cfg.sym:
            want["weight_zero_point"] = (-(-out_f * b // 32), G)
        for k, shape in want.items():
            key = f"{name}.{k}"
            if key not in index:
                raise ValueError(f"{p}: tensor {key} is missing")
            if tuple(index[key][1]["shape"]) != shape:
                raise ValueError(f"{index[key][0].name}: {key} has shape {index[key][1]['shape']}; the model's layer "
                                 f"({out_f}, {in_f}) at {b} bits with groups of {cfg.group_size} needs {list(shape)}")
        keys = [f"{name}.{k}" for k in (*want, "bias") if f"{name}.{k}" in index]
        t = {k.rsplit(".", 1)[1]: v for k, v in load_tensors(index, keys).items()}
        if t["weight_shape"].tolist() != [out_f, in_f]:
            raise ValueError(f"{index[keys[0]][0].name}: {name}.weight_shape is {t['weight_shape'].tolist()}, "
                             f"the model's layer is {[out_f, in_f]}")
        half = 2 ** (b - 1)
        codes = unpack_from_int32(t["weight_packed"], b, torch.Size([out_f, in_f])).long() + half
        zeros = (unpack_from_int32(t["weight_zero_point"], b, torch.Size([out_f, G]), packed_dim=0).long() + half
                 if not cfg.sym else torch.full((out_f, G), half))
        scales = t["weight_scale"]
        perm = None
        if f"{name}.weight_g_idx" in index:  # activation order: columns of one group are spread over the row
            gidx = load_tensors(index, [f"{name}.weight_g_idx"])[f"{name}.weight_g_idx"].long()
            if tuple(gidx.shape) != (in_f,) or int(gidx.min()) < 0 or int(gidx.max()) >= G:
                raise ValueError(f"{index[f'{name}.weight_g_idx'][0].name}: {name}.weight_g_idx must hold {in_f} groups "
                                 f"in [0, {G})")
            perm = group_order(gidx, cfg.group(in_f))
            codes = codes if perm is None else codes[:, perm]
        layers[name] = QuantLinear.from_codes(codes, scales, zeros, cfg, t.get("bias") if has_bias else None,
                                              in_perm=perm, scale_dtype=scales.dtype)
    for name, q in layers.items():
        replace_module(model, name, q)
    rest = [n for n in index if n.rpartition(".")[0] not in layers]  # weight_g_idx included: read above
    for name, v in load_tensors(index, rest).items():
        set_tensor(model, name, v)
    model = finish(model, p)
    give_back_memory()
    first = next(iter(plan.values()))[0]
    model.mdq_quant = {"backend": "compressed-tensors-checkpoint", "config": first.to_json(), "modules": list(layers)}
    return model
