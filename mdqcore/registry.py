"""Capabilities by kind and name, each with the plugin and version that registered it."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from attrs import field, frozen

from .errors import DuplicateCapabilityError, RegistrationError, UnknownCapabilityError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def _check_params(meta: Mapping[str, Any]) -> dict[str, Any]:
    params = meta.get("params")
    if not isinstance(params, Mapping) or not params:
        raise RegistrationError("an operator needs params={'name': (lo, hi), ...} (admissible intervals)")
    clean: dict[str, tuple[float, float]] = {}
    for pname, interval in params.items():
        try:
            lo, hi = (float(v) for v in interval)
        except (TypeError, ValueError):
            raise RegistrationError(f"params[{pname!r}] must be a (lo, hi) pair of numbers, got {interval!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise RegistrationError(f"params[{pname!r}] = {interval!r} is not a finite interval with lo <= hi")
        clean[str(pname)] = (lo, hi)
    return {**meta, "params": clean}


def _optional_params(meta: Mapping[str, Any]) -> dict[str, Any]:
    return _check_params(meta) if "params" in meta else dict(meta)


def _check_semiring(meta: Mapping[str, Any]) -> dict[str, Any]:
    if meta.get("semiring") not in ("sum", "max"):
        raise RegistrationError(f"an index feature needs semiring='sum' or 'max', got {meta.get('semiring')!r}")
    return dict(meta)


def _check_schemes(meta: Mapping[str, Any]) -> dict[str, Any]:
    schemes = meta.get("schemes", ())
    if isinstance(schemes, str) or not all(isinstance(s, str) for s in schemes):
        raise RegistrationError(f"schemes must be a tuple of URL schemes, got {schemes!r}")
    return {**meta, "schemes": tuple(schemes)}


def _any(meta: Mapping[str, Any]) -> dict[str, Any]:
    return dict(meta)


@frozen
class Kind:
    """One capability kind: the hook that fills it and how its metadata is checked."""

    name: str
    hook: str
    check_meta: Callable[[Mapping[str, Any]], dict[str, Any]] = _any


KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        Kind("operator", "register_operators", _check_params),
        Kind("length_policy", "register_length_policies", _optional_params),
        Kind("index_feature", "register_index_features", _check_semiring),
        Kind("gate", "register_gates", _optional_params),
        Kind("evaluator", "register_evaluators"),
        Kind("quantizer", "register_quantizers"),
        Kind("outlier_classifier", "register_outlier_classifiers"),
        Kind("moe_projector", "register_moe_projectors"),
        Kind("compat_rule", "register_compat_rules"),
        Kind("command", "register_commands"),
        Kind("ledger_backend", "register_ledger_backends", _check_schemes),
    )
}


@frozen
class Capability:
    """A registered capability: what it is, who gave it, at which version."""

    kind: str
    name: str
    obj: Any = field(repr=False)
    plugin: str
    distribution: str | None
    version: str | None
    meta: Mapping[str, Any] = field(factory=dict, repr=False)

    @property
    def origin(self) -> str:
        """Say which plugin (and distribution version) registered this capability."""
        dist = f" ({self.distribution} {self.version})" if self.distribution else ""
        return f"plugin {self.plugin!r}{dist}"


class Registry:
    """Capabilities by kind and name; filled by the plugin loader, read by everything else."""

    def __init__(self) -> None:
        self._caps: dict[tuple[str, str], Capability] = {}
        self.plugins: dict[str, Any] = {}  # name -> PluginInfo, filled by mdqcore.plugins

    def make_capability(
        self, kind: str, name: Any, obj: Any, *, plugin: str, distribution: str | None,
        version: str | None, meta: Mapping[str, Any],
    ) -> Capability:
        """Check one `register(...)` call and return the capability it describes (not yet added)."""
        if kind not in KINDS:
            raise RegistrationError(f"unknown capability kind {kind!r} (kinds: {', '.join(KINDS)})")
        if not isinstance(name, str) or not _NAME.match(name):
            raise RegistrationError(
                f"{kind} name {name!r} is not valid: use letters, digits, '_', '.', '-' and start with a letter or digit"
            )
        if obj is None:
            raise RegistrationError(f"{kind} {name!r}: register(name, obj) needs an object, got None")
        return Capability(kind, name, obj, plugin, distribution, version, KINDS[kind].check_meta(meta))

    def add(self, cap: Capability) -> None:
        """Add one capability; a second one with the same kind and name is an error naming both."""
        key = (cap.kind, cap.name)
        if key in self._caps:
            raise DuplicateCapabilityError(cap.kind, cap.name, self._caps[key].origin, cap.origin)
        self._caps[key] = cap

    def add_all(self, caps: list[Capability]) -> None:
        """Add several capabilities at once: all of them, or none if any clashes."""
        seen: dict[tuple[str, str], Capability] = {}
        for cap in caps:
            key = (cap.kind, cap.name)
            prior = self._caps.get(key) or seen.get(key)
            if prior is not None:
                raise DuplicateCapabilityError(cap.kind, cap.name, prior.origin, cap.origin)
            seen[key] = cap
        self._caps.update(seen)

    def get(self, kind: str, name: str) -> Capability:
        """Return the capability of this kind and name, or raise naming what is available."""
        try:
            return self._caps[(kind, name)]
        except KeyError:
            if kind not in KINDS:
                hint = difflib.get_close_matches(kind, KINDS, n=1)
                raise UnknownCapabilityError("capability kind", kind, list(KINDS), hint[0] if hint else "") from None
            known = self.names(kind)
            hint = difflib.get_close_matches(name, known, n=1)
            raise UnknownCapabilityError(kind, name, known, hint[0] if hint else "") from None

    def find(self, kind: str, name: str) -> Capability | None:
        """Return the capability of this kind and name, or None."""
        return self._caps.get((kind, name))

    def names(self, kind: str) -> list[str]:
        """Return the sorted names registered under one kind."""
        return sorted(n for (k, n) in self._caps if k == kind)

    def of_kind(self, kind: str) -> list[Capability]:
        """Return the capabilities of one kind, sorted by name."""
        return [self._caps[(kind, n)] for n in self.names(kind)]

    def by_plugin(self, plugin: str) -> list[Capability]:
        """Return the capabilities one plugin registered."""
        return [c for c in self._caps.values() if c.plugin == plugin]

    def __iter__(self) -> Iterator[Capability]:
        return iter(sorted(self._caps.values(), key=lambda c: (c.kind, c.name)))

    def __len__(self) -> int:
        return len(self._caps)

    def __contains__(self, key: object) -> bool:
        return key in self._caps
