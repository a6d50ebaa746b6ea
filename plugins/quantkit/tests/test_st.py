"""safetensors headers checked before any work (issue #19)."""

import pytest
import torch
from safetensors.torch import save_file

from mdq_quantkit.st import checkpoint_tensors, read_header


def test_header_is_read_and_a_truncated_file_is_named(tmp_path):
    f = tmp_path / "m.safetensors"
    save_file({"a": torch.zeros(4, 4), "b.weight": torch.ones(100)}, f)
    assert set(read_header(f)) == {"a", "b.weight"}
    data = f.read_bytes()
    f.write_bytes(data[:-8])
    with pytest.raises(ValueError, match=r"m.safetensors is truncated: tensor 'b.weight'"):
        read_header(f)
    f.write_bytes(data[:6])
    with pytest.raises(ValueError, match="no header"):
        read_header(f)
    f.write_bytes(data[:20])
    with pytest.raises(ValueError, match="truncated or not safetensors"):
        read_header(f)


def test_a_directory_without_weights_or_with_a_tensor_twice_is_refused(tmp_path):
    with pytest.raises(ValueError, match="no \\*.safetensors"):
        checkpoint_tensors(tmp_path)
    save_file({"a": torch.zeros(2)}, tmp_path / "x.safetensors")
    save_file({"a": torch.zeros(2)}, tmp_path / "y.safetensors")
    with pytest.raises(ValueError, match="tensor 'a' is in both x.safetensors and y.safetensors"):
        checkpoint_tensors(tmp_path)
