"""Models and their converter: the seed package loads; every malformed document says where (issue #2)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

import mdqcore
from mdqcore import Gate, Idx, Len, MdqPackage, Op, PackageError
from mdqcore.model import canonical_json, structure, unstructure

ROOT = Path(__file__).resolve().parents[1]
SEED = {"name": "mdq.idx.ifu.idf-boost", "semver": "1.4.2", "scope": ["MED", "RAG"],
        "atoms": [{"type": "Idx", "feature": "idf", "seg": "神经氨酸酶", "delta": 0.07}],
        "tests": ["legal", "budget", "blacklist"], "rollback": {"inverse": ["..."]},
        "kpi": {"target": {"w_nc_drop": 0.3}}}


def test_seed_example_loads_as_written():
    pkg = mdqcore.load_package(ROOT / "examples" / "idf-boost.json")
    assert pkg.ref == "mdq.idx.ifu.idf-boost@1.4.2"
    assert pkg.atoms == [Idx(feature="idf", seg="神经氨酸酶", delta=0.07)]
    assert pkg.rollback.auto and pkg.inverse_atoms() == [Idx(feature="idf", seg="神经氨酸酶", delta=-0.07)]
    assert pkg.kpi.target == {"w_nc_drop": 0.3}


def test_reference_example_in_concepts_doc_loads():
    block = re.search(r"```json\n(.*?)```", (ROOT / "docs" / "concepts.md").read_text(encoding="utf-8"), re.S).group(1)
    assert mdqcore.load_package(block) == mdqcore.load_package(ROOT / "examples" / "idf-boost.json")


def _with(**changes):
    doc = json.loads(json.dumps(SEED))
    for path, value in changes.items():
        *parents, last = path.split("__")
        node = doc
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        if value is _DROP:
            del node[int(last) if last.isdigit() else last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return doc


_DROP = object()

MALFORMED = [
    ("missing field", _with(semver=_DROP), "required field missing", "$.semver"),
    ("wrong type", _with(atoms__0__delta="0.07"), "expected a number, got a string", "$.atoms[0].delta"),
    ("bool is not a number", _with(atoms__0__delta=True), "expected a number, got a boolean", "$.atoms[0].delta"),
    ("non-finite number", _with(atoms__0__delta=float("inf")), "expected a finite number", "$.atoms[0].delta"),
    ("NaN", _with(atoms__0__delta=float("nan")), "expected a finite number", "$.atoms[0].delta"),
    ("unknown atom type", _with(atoms__0__type="Idxx"), "unknown atom type 'Idxx'", "$.atoms[0].type"),
    ("atom without type", _with(atoms__0__type=_DROP), "required field missing", "$.atoms[0].type"),
    ("extra key in atom", _with(atoms__0__weight=1), "unknown key 'weight'", "$.atoms[0]"),
    ("extra key at top", _with(author="me"), "unknown key 'author'", "$"),
    ("invalid semver", _with(semver="1.4"), "'1.4' is not a SemVer version", "$.semver"),
    ("invalid semver text", _with(semver="v1.4.2"), "is not a SemVer version", "$.semver"),
    ("bad name", _with(name="Mdq Idx"), "is not a valid name", "$.name"),
    ("scope is a string", _with(scope="MED"), "expected an array, got a string", "$.scope"),
    ("atoms empty", _with(atoms=[]), "at least one atom", "$"),
    ("atoms not array", _with(atoms={"type": "Idx"}), "expected an array, got an object", "$.atoms"),
    ("both delta and value", _with(atoms__0__value=0.5), "exactly one of 'delta'", "$.atoms[0]"),
    ("neither delta nor value", _with(atoms__0__delta=_DROP), "exactly one of 'delta'", "$.atoms[0]"),
    ("atom not an object", _with(atoms__0=7), "an atom must be an object", "$.atoms[0]"),
    ("bad inverse item", _with(rollback__inverse=["undo it"]), "expected an atom object or '...'", "$.rollback.inverse[0]"),
    ("kpi value", _with(kpi__target__w_nc_drop="30%"), "expected a number", "$.kpi.target['w_nc_drop']"),
    ("test name type", _with(tests=["legal", 5]), "expected a string, got an integer", "$.tests[1]"),
    ("requires not object", _with(requires=["flexattn"]), "expected an object, got an array", "$.requires"),
    ("provenance time zone", _with(provenance={"author": "a", "reason": "r", "created_at": "2026-11-22T10:00:00"}),
     "has no time zone", "$.provenance.created_at"),
    ("provenance missing", _with(provenance={"author": "a"}), "required field missing", "$.provenance.reason"),
    ("empty seg", _with(atoms__0__seg=""), "non-empty 'seg'", "$.atoms[0]"),
]


@pytest.mark.parametrize("label, doc, message, path", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_package_names_what_and_where(label, doc, message, path):
    with pytest.raises(PackageError) as e:
        mdqcore.load_package(doc)
    hits = [p for p in e.value.problems if message in p.message and p.path == path]
    assert hits, f"expected '{message} @ {path}', got {[str(p) for p in e.value.problems]}"


def test_all_problems_are_reported_at_once():
    doc = _with(semver="x", atoms__0__delta="a", scope=3)
    with pytest.raises(PackageError) as e:
        mdqcore.load_package(doc)
    assert {p.path for p in e.value.problems} == {"$.semver", "$.atoms[0].delta", "$.scope"}
    assert str(e.value).startswith("package is invalid (3 problems):")


@pytest.mark.parametrize("text, fragment", [
    ('{"name": "a",}', "invalid JSON: Expecting property name"),
    ("[1, 2]", "expected an object, got an array"),
    (b'{"name": "\xff"}', "not UTF-8 text"),
])
def test_bad_json_text(tmp_path, text, fragment):
    f = tmp_path / "p.json"
    f.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(PackageError) as e:
        mdqcore.load_package(f)
    assert fragment in str(e.value) and e.value.source == str(f)


def test_missing_file_is_a_package_error(tmp_path):
    with pytest.raises(PackageError, match="cannot read file"):
        mdqcore.load_package(tmp_path / "absent.json")


def test_explicit_inverse_atoms_are_used():
    pkg = mdqcore.load_package(_with(atoms=[{"type": "Op", "op": "L", "param": "lambda_lex", "value": 0.3}],
                                     rollback={"inverse": [{"type": "Op", "op": "L", "param": "lambda_lex",
                                                            "value": 0.25}]}))
    assert not pkg.rollback.auto
    assert pkg.inverse_atoms() == [Op("L", "lambda_lex", value=0.25)]


def test_value_atom_has_no_derived_inverse():
    pkg = mdqcore.load_package(_with(atoms=[{"type": "Gate", "gate": "budget", "param": "ceiling", "value": 3}]))
    with pytest.raises(ValueError, match="needs the prior value"):
        pkg.inverse_atoms()


def test_switch_values_stay_booleans():
    pkg = mdqcore.load_package(_with(atoms=[{"type": "Op", "op": "T", "param": "blacklist", "value": False}]))
    assert pkg.atoms[0].value is False


def test_canonical_json_is_stable_and_sorted():
    a = canonical_json(mdqcore.load_package(SEED))
    b = canonical_json(mdqcore.load_package(json.loads(json.dumps(SEED, sort_keys=True))))
    assert a == b and a.startswith('{"atoms":[{"delta":0.07,"feature":"idf","seg":"神经氨酸酶","type":"Idx"}]')


_finite = st.floats(allow_nan=False, allow_infinity=False, width=64)
_text = st.text(min_size=1, max_size=8)
_atoms = st.one_of(
    st.builds(Op, op=_text, param=_text, delta=_finite),
    st.builds(Op, op=_text, param=_text, value=st.booleans()),
    st.builds(Len, param=_text, value=_finite, policy=st.none() | _text),
    st.builds(Idx, feature=_text, seg=_text, delta=_finite, target=st.none() | _text),
    st.builds(Gate, gate=_text, param=_text, value=_finite),
)


@given(atoms=st.lists(_atoms, min_size=1, max_size=5),
       scope=st.lists(_text, max_size=3),
       major=st.integers(0, 99), minor=st.integers(0, 99))
def test_round_trip_through_json(atoms, scope, major, minor):
    pkg = MdqPackage(name="pkg.x", semver=f"{major}.{minor}.0", atoms=atoms, scope=scope)
    again = structure(json.loads(json.dumps(unstructure(pkg))), MdqPackage)
    assert again == pkg
