"""mdq's backends behind optimum's `OptimumQuantizer` interface (from_pretrained + quantize(save_dir))."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from optimum.quantization_base import OptimumQuantizer

from .backends import RTN, quantize_model
from .config import QuantConfig
from .data import calibration_samples, corpus_text, split_tokens, tokenize
from .io import save_quantized
from .models import load


class MdqQuantizer(OptimumQuantizer):
    """Quantize a model with any mdq backend the optimum way: `MdqQuantizer.from_pretrained(path).quantize(dir)`."""

    def __init__(self, model: Any, tokenizer: Any = None) -> None:
        self.model, self.tokenizer = model, tokenizer

    @classmethod
    def from_pretrained(cls, model_or_path: str | Path, file_name: str | None = None) -> MdqQuantizer:
        """Load 'smollm2-135m' or a checkpoint directory (file_name is not used: checkpoints are directories)."""
        model, tok = load(model_or_path)
        return cls(model, tok)

    def quantize(self, save_dir: str | Path, file_prefix: str | None = None, *, backend: Any = None,
                 bits: int = 4, group_size: int = 128, sym: bool = False, samples: int = 64, seqlen: int = 512,
                 text: str | None = None, **_: Any) -> Path:
        """Quantize with `backend` (an mdq backend object; RTN by default) and save to `save_dir`."""
        algo = backend or RTN()
        calib = []
        if algo.needs_calibration:
            if self.tokenizer is None:
                raise ValueError("calibration needs a tokenizer; this checkpoint has none")
            pool, _ = split_tokens(tokenize(self.tokenizer, corpus_text(text)))
            calib = calibration_samples(pool, samples, seqlen)
        quantize_model(self.model, QuantConfig(bits, group_size, sym), algo, calib)
        return save_quantized(self.model, save_dir, self.tokenizer)
