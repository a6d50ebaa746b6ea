"""The generated JSON Schema agrees with the converter (issue #2)."""

from __future__ import annotations

import jsonschema
import pytest

import mdqcore

from .test_model import MALFORMED, SEED

VALIDATOR = jsonschema.Draft202012Validator(mdqcore.package_schema())

# what JSON Schema cannot say: finiteness (NaN/inf are not JSON) and a time zone inside date-time
_SCHEMA_BLIND = {"non-finite number", "NaN", "provenance time zone"}


def test_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(mdqcore.package_schema())


def test_seed_package_is_valid_under_the_schema():
    assert list(VALIDATOR.iter_errors(SEED)) == []


@pytest.mark.parametrize("label, doc", [(m[0], m[1]) for m in MALFORMED if m[0] not in _SCHEMA_BLIND],
                         ids=[m[0] for m in MALFORMED if m[0] not in _SCHEMA_BLIND])
def test_schema_rejects_what_the_converter_rejects(label, doc):
    assert list(VALIDATOR.iter_errors(doc)), f"schema accepted malformed case {label!r}"


def test_required_fields_follow_the_model():
    schema = mdqcore.package_schema()
    assert schema["required"] == ["name", "semver", "atoms"]
    assert set(schema["$defs"]) == {"Op", "Len", "Idx", "Gate", "Rollback", "Kpi", "Provenance"}
