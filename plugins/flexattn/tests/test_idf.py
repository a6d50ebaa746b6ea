import pytest

from mdq_flexattn.catalog import Catalog, Entry
from mdq_flexattn.idf import FrequencyList, IdfWeights, default_frequencies
from mdqcore.errors import DocumentError
from mdqcore.model.state import ControlState


@pytest.fixture(scope="module")
def idf():
    return IdfWeights(default_frequencies())


def test_real_frequency_list():
    f = default_frequencies()
    assert len(f.counts) > 300_000 and f.total > 50_000_000
    assert f.freq("可以") > f.freq("抑制剂") > 0


def test_weights_in_unit_interval_and_high_frequency_phrases_low(idf):
    terms = ["是一种", "作用于", "可以", "抑制剂", "神经氨酸酶", "磷酸奥司他韦", "宿主细胞"]
    w = {t: idf(t) for t in terms}
    assert all(0.0 <= v <= 1.0 for v in w.values())
    assert w["是一种"] < w["抑制剂"] < w["神经氨酸酶"]
    assert w["可以"] < 0.5 < w["宿主细胞"]
    assert w["神经氨酸酶"] == pytest.approx(0.9, abs=1e-3)  # a rare term sits at the ceiling


def test_phrase_estimate_uses_its_segmentation():
    f = FrequencyList({"是": 1000, "一种": 100, "其他": 1})
    assert f.freq("是一种") == pytest.approx(1000 * 100 / f.total)


def test_overrides_and_ceiling_come_from_state(idf):
    s = ControlState({("index", "idf", "神经氨酸酶"): 0.07, ("param", "Op", "flexattn", "idf_ceiling"): 1.0})
    assert idf("神经氨酸酶", s) == pytest.approx(min(1.0, idf.base("神经氨酸酶") + 0.07))
    s2 = ControlState({("index", "idf", "可以"): -5.0})
    assert idf("可以", s2) == 0.0


def test_catalog_frequency_overrides_the_list():
    w = IdfWeights(default_frequencies(), Catalog([Entry("神经氨酸酶", freq=10_000_000)]))
    assert w.base("神经氨酸酶") < 0.2


def test_bad_frequency_file(tmp_path):
    (tmp_path / "f.txt").write_text("的 10\n了 x\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="line 2"):
        FrequencyList.load(tmp_path / "f.txt")
    with pytest.raises(DocumentError, match="empty"):
        FrequencyList({})
