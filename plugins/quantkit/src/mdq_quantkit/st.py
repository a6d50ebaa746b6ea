"""safetensors files checked before anything is read: header, dtypes, shapes, and that every tensor's bytes are there.

A truncated download or an interrupted save leaves a header that promises more bytes than the
file holds; safetensors then fails late or maps garbage. `read_header` reads only the header
(8-byte length + JSON) and compares every tensor's byte range with the file's size, so a bad
file is named, with its first missing tensor, before any work.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
            "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def read_header(path: str | Path) -> dict[str, dict[str, Any]]:
    """Return {tensor name: {"dtype", "shape", "data_offsets"}} after checking the file holds every tensor's bytes."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p} does not exist")
    size = p.stat().st_size
    with p.open("rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise ValueError(f"{p} is not a safetensors file ({size} bytes, no header); re-export or re-download it")
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100_000_000:
            raise ValueError(f"{p}: its header claims {n} bytes but the file has {size}; the file is truncated or not "
                             f"safetensors; re-export or re-download it")
        try:
            header = json.loads(f.read(n))
        except ValueError as exc:
            raise ValueError(f"{p}: the safetensors header is not valid JSON ({exc}); the file is damaged") from None
    header.pop("__metadata__", None)
    base = 8 + n
    for name, info in sorted(header.items(), key=lambda kv: kv[1].get("data_offsets", [0])[0]):
        dtype, shape, (a, b) = info.get("dtype"), info.get("shape"), info.get("data_offsets", (0, -1))
        if dtype not in ITEMSIZE or not isinstance(shape, list):
            raise ValueError(f"{p}: tensor {name!r} has dtype {dtype!r} / shape {shape!r}, which safetensors does not define")
        numel = 1
        for d in shape:
            numel *= int(d)
        if b - a != numel * ITEMSIZE[dtype]:
            raise ValueError(f"{p}: tensor {name!r} ({dtype} {shape}) spans {b - a} bytes, expected {numel * ITEMSIZE[dtype]}")
        if base + b > size:
            raise ValueError(f"{p} is truncated: tensor {name!r} needs bytes up to {base + b} but the file ends at {size}; "
                             f"re-export or re-download it")
        info["offset"] = base + a  # absolute byte offset of the tensor's data
    return header


def checkpoint_tensors(directory: str | Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Return {tensor name: (file, header entry)} over every *.safetensors file of a checkpoint directory, checked."""
    d = Path(directory)
    files = sorted(d.glob("*.safetensors"))
    if not files:
        raise ValueError(f"{d} holds no *.safetensors file")
    out: dict[str, tuple[Path, dict[str, Any]]] = {}
    for f in files:
        for name, info in read_header(f).items():
            if name in out:
                raise ValueError(f"tensor {name!r} is in both {out[name][0].name} and {f.name}")
            out[name] = (f, info)
    return out


def load_tensors(index: dict[str, tuple[Path, dict[str, Any]]], names: list[str]) -> dict[str, Any]:
    """Load the named tensors (already checked by `checkpoint_tensors`) with plain reads, no memory map.

    safetensors' own loader maps the whole file and the mapping outlives the handle: every page
    a streamed quantization touched stayed resident (400 MB of SmolLM2's 540 MB file). Reading
    each tensor's bytes into its own buffer keeps resident only what is kept.
    """
    import torch

    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
              "BOOL": torch.bool}
    by_file: dict[Path, list[str]] = {}
    for n in names:
        by_file.setdefault(index[n][0], []).append(n)
    out = {}
    for f, ns in by_file.items():
        with f.open("rb") as h:
            for n in sorted(ns, key=lambda k: index[k][1]["offset"]):
                info = index[n][1]
                if info["dtype"] not in dtypes:
                    raise ValueError(f"{f}: tensor {n!r} has dtype {info['dtype']}, which mdq does not read")
                a, b = info["data_offsets"]
                buf = bytearray(b - a)
                h.seek(info["offset"])
                if h.readinto(buf) != len(buf):
                    raise ValueError(f"{f} is truncated: tensor {n!r} could not be read whole")
                t = torch.frombuffer(buf, dtype=dtypes[info["dtype"]]) if buf else torch.empty(0, dtype=dtypes[info["dtype"]])
                out[n] = t.reshape(info["shape"])
    return out
