import pytest
import torch

from mdq_quantkit.packing import pack, unpack, words_for


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("n", [1, 31, 32, 33, 576])
def test_round_trip(bits, n):
    codes = torch.randint(0, 2 ** bits, (7, n), generator=torch.Generator().manual_seed(n))
    packed = pack(codes, bits)
    assert packed.dtype == torch.int32 and packed.shape == (7, words_for(n, bits))
    assert torch.equal(unpack(packed, bits, n), codes)


def test_layout_is_a_little_endian_bit_stream():
    # eleven 3-bit codes: the one at index 10 starts at bit 30 and spills into the next word
    codes = (torch.arange(11) * 5 % 8).unsqueeze(0)
    w = pack(codes, 3).to(torch.int64) & 0xFFFFFFFF
    stream = int(w[0, 0]) | (int(w[0, 1]) << 32)
    assert [(stream >> (3 * i)) & 7 for i in range(11)] == codes[0].tolist()


def test_out_of_range_codes_are_refused():
    with pytest.raises(ValueError, match=r"\[0, 15\]"):
        pack(torch.tensor([[16]]), 4)
    with pytest.raises(ValueError, match="2-D"):
        pack(torch.tensor([1, 2]), 4)
