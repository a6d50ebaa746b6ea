import pytest
import torch

from mdq_flexattn.window import WindowAttention, dense_window_attention, flex_window_attention, window_mask


def _qkv(B=2, H=2, T=37, D=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, T, D, generator=g) for _ in range(3)]


def test_mask_semantics():
    m = window_mask(torch.tensor([[1, 2, 2, 3]]))[0, 0]
    assert m.tolist() == [[True, False, False, False], [True, True, False, False],
                          [False, True, True, False], [False, True, True, True]]


@pytest.mark.parametrize("shape", ["T", "BT"])
def test_flex_matches_dense_reference(shape):
    q, k, v = _qkv()
    T = q.shape[2]
    w = torch.randint(1, 7, (T,) if shape == "T" else (2, T), generator=torch.Generator().manual_seed(1))
    ref = dense_window_attention(q, k, v, w)
    out = flex_window_attention(q, k, v, w)
    assert torch.allclose(out, ref, atol=1e-5, rtol=1e-5)
    # window 1 = attend to self only: the output is v itself
    ones = torch.ones(T, dtype=torch.long)
    assert torch.allclose(flex_window_attention(q, k, v, ones), v, atol=1e-5)


def test_module_falls_back_to_dense_when_flex_cannot_run(monkeypatch):
    import mdq_flexattn.window as w

    def broken(*a, **k):
        raise RuntimeError("no flex here")

    monkeypatch.setattr(w, "flex_window_attention", broken)
    q, k, v = _qkv(T=8)
    win = torch.full((8,), 3)
    mod = WindowAttention()
    with pytest.warns(RuntimeWarning, match="dense SDPA"):
        out = mod(q, k, v, win)
    assert mod.used == "dense" and torch.allclose(out, dense_window_attention(q, k, v, win))
    with pytest.raises(RuntimeError):
        WindowAttention("flex")(q, k, v, win)


def test_bad_windows_are_refused():
    q, k, v = _qkv(T=8)
    with pytest.raises(ValueError, match=r"expected \(8,\) or \(2, 8\)"):
        flex_window_attention(q, k, v, torch.ones(7, dtype=torch.long))
    with pytest.raises(ValueError, match=">= 1"):
        dense_window_attention(q, k, v, torch.zeros(8, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        WindowAttention()(q, k, v, torch.ones(8))
    with pytest.raises(ValueError, match="B, H, T, D"):
        dense_window_attention(q[0], k[0], v[0], torch.ones(8, dtype=torch.long))
    with pytest.raises(ValueError, match="backend"):
        WindowAttention("sparse")
