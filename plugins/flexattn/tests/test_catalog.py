import json

import pytest

from mdq_flexattn.catalog import Catalog, Entry, check_lengths
from mdqcore.errors import DocumentError


def test_starter_catalog_is_real_and_large():
    cat = Catalog.starter()
    assert len(cat) >= 300
    for term in ("磷酸奥司他韦", "奥司他韦", "神经氨酸酶", "特异性", "抑制剂", "宿主细胞", "流感病毒"):
        assert term in cat
    assert cat.canonical("达菲") == "奥司他韦"  # alias
    assert "是一种" in cat.tagged("general")


def test_tsv_and_jsonl_agree(tmp_path):
    (tmp_path / "c.tsv").write_text("# term\tfreq\taliases\ttags\n流感病毒\t12\t流感\tbio,med\n", encoding="utf-8")
    (tmp_path / "c.jsonl").write_text(json.dumps({"term": "流感病毒", "freq": 12, "aliases": ["流感"],
                                                  "tags": ["bio", "med"]}, ensure_ascii=False) + "\n", encoding="utf-8")
    a, b = Catalog.load(tmp_path / "c.tsv"), Catalog.load(tmp_path / "c.jsonl")
    assert a.entries == b.entries and a.entries["流感病毒"] == Entry("流感病毒", 12, ("流感",), ("bio", "med"))


@pytest.mark.parametrize("line, expect", [
    ("酶", "fewer than 2 characters"),
    ("一二三四五六七八九", "more than the limit of 8"),
    ("流感，病毒", "punctuation"),
])
def test_bad_terms_are_refused_with_their_line(tmp_path, line, expect):
    (tmp_path / "c.tsv").write_text(f"流感病毒\n{line}\n", encoding="utf-8")
    with pytest.raises(DocumentError) as e:
        Catalog.load(tmp_path / "c.tsv")
    assert expect in str(e.value) and "$[1].term" in str(e.value)


def test_empty_catalog_and_non_utf8(tmp_path):
    (tmp_path / "e.tsv").write_text("# only a header\n", encoding="utf-8")
    with pytest.raises(DocumentError, match="no terms"):
        Catalog.load(tmp_path / "e.tsv")
    (tmp_path / "g.tsv").write_bytes("流感病毒\n".encode() + "神经氨酸酶\n".encode("gbk"))
    with pytest.raises(DocumentError, match=r"not UTF-8.*line 2"):
        Catalog.load(tmp_path / "g.tsv")
    with pytest.raises(FileNotFoundError):
        Catalog.load(tmp_path / "missing.tsv")


def test_bad_jsonl_line(tmp_path):
    (tmp_path / "c.jsonl").write_text('{"term": "流感病毒"}\n{"freq": 3}\n{"term": "宿主细胞", "freq": -1}\n',
                                      encoding="utf-8")
    with pytest.raises(DocumentError) as e:
        Catalog.load(tmp_path / "c.jsonl")
    assert "line 2" in str(e.value) and "line 3" in str(e.value)


@pytest.mark.parametrize("U", [(), (0, 2), (-1, 3), (1, 2)])
def test_bad_length_sets(U):
    with pytest.raises(ValueError):
        check_lengths(U)


def test_alias_clash_is_refused():
    with pytest.raises(DocumentError, match="already names"):
        Catalog([Entry("奥司他韦"), Entry("达菲药", aliases=("奥司他韦",))])
