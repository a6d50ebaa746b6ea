"""The perplexity protocol as a file every venv can read: calibration windows per draw and evaluation ids.

Written once per benchmark run from mdq_quantkit.data (pydoc_data.topics, first half of the
tokens for calibration, second half for evaluation), so ours and the anchors quantize on the
same windows and are scored on the same tokens by the same function.
"""

from __future__ import annotations

import json
from pathlib import Path


def write_protocol(path: Path, samples: int, seqlen: int, tokens: int, seeds: list[int]) -> dict:
    """Write the protocol JSON for SmolLM2-135M and return it."""
    from mdq_quantkit.data import calibration_samples, corpus_text, split_tokens, tokenize
    from mdq_quantkit.models import load_tokenizer, smollm2_dir

    tok = load_tokenizer(smollm2_dir())
    pool, ev = split_tokens(tokenize(tok, corpus_text()))
    proto = {"model_dir": str(smollm2_dir()), "samples": samples, "seqlen": seqlen, "tokens": tokens,
             "decode_tokens": 64, "text": "pydoc_data.topics (sorted keys, blank-line joined)",
             "calibration": {str(s): [w.reshape(-1).tolist() for w in calibration_samples(pool, samples, seqlen, seed=s)]
                             for s in seeds},
             "eval": ev[:tokens].tolist()}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(proto))
    return proto
