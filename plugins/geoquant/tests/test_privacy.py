"""Planted secrets: records, the fine-tune that plants them, extraction and exposure."""

import re

import pytest
import torch

from mdq_geoquant.privacy import extraction_rate, make_secrets, mean_exposure, plant, secret_samples
from mdq_quantkit.models import tiny_llama



def test_records_have_distinct_ids_of_the_format():
    s = make_secrets(16)
    assert len({x.secret for x in s}) == 16 and all(re.fullmatch(r"P\d{5}", x.secret) for x in s)
    assert s[0].text.startswith("Patient record: ") and s[0].secret in s[0].text
    assert make_secrets(4, seed=3) == make_secrets(4, seed=3)
    with pytest.raises(ValueError, match="n must be"):
        make_secrets(0)


def test_planting_makes_the_secrets_more_likely_and_measures_stay_in_range(char_tok):
    torch.manual_seed(0)
    m, tok = tiny_llama(), char_tok
    secrets = make_secrets(2)
    general = torch.randint(0, 256, (4, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = float(sum(m(x, labels=x).loss for x in secret_samples(tok, secrets)))
    losses = plant(m, tok, secrets, general, steps=30, lr=3e-3, batch=2)
    with torch.no_grad():
        after = float(sum(m(x, labels=x).loss for x in secret_samples(tok, secrets)))
    assert len(losses) == 30 and after < before * 0.7
    assert not m.training
    assert 0.0 <= extraction_rate(m, tok, secrets) <= 1.0
    assert 0.0 <= mean_exposure(m, tok, secrets, candidates=15) <= 4.0
    with pytest.raises(ValueError, match="windows"):
        plant(m, tok, secrets, general[0], steps=1)
