"""The index format and its errors (issue #3)."""

from __future__ import annotations

import pytest

from mdqcore import DocumentError
from mdqcore.versions.index import Index


def test_load_and_digest(tmp_path):
    f = tmp_path / "i.json"
    f.write_text('{"packages": {"a": {"1.0.0": {"requires": {"b": "^1"}}, "1.1.0": {}}, "b": {"1.0.0": {}}}}')
    idx = Index.load(f)
    assert idx.requires("a", "1.0.0") == {"b": "^1"} and idx.requires("a", "1.1.0") == {}
    assert idx.digest() == Index.of({"b": {"1.0.0": {}}, "a": {"1.1.0": {}, "1.0.0": {"b": "^1"}}}).digest()


@pytest.mark.parametrize("doc, where", [
    ({"packages": {"a": {"1.0": {}}}}, "$.packages['a']['1.0']"),
    ({"packages": {"a": {"1.0.0": {"requires": {"b": "^^1"}}}}}, "$.packages['a']['1.0.0'].requires['b']"),
    ({"packages": {"a": {"1.0.0": {"needs": {}}}}}, "$.packages['a']['1.0.0']"),
    ({"packages": {"A B": {}}}, "$.packages['A B']"),
    ({"packages": []}, "$.packages"),
    ({"pkgs": {}}, "$"),
])
def test_malformed_index_says_where(doc, where):
    with pytest.raises(DocumentError) as e:
        Index.from_dict(doc)
    assert where in [p.path for p in e.value.problems], e.value


def test_unreadable_and_non_json(tmp_path):
    with pytest.raises(DocumentError, match="cannot read file"):
        Index.load(tmp_path / "absent.json")
    (tmp_path / "x.json").write_text("{nope")
    with pytest.raises(DocumentError, match="invalid JSON"):
        Index.load(tmp_path / "x.json")
