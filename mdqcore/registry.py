"""Capabilities by kind and name, each with the plugin and version that registered it."""

from __future__ import annotations

import math
import re
import typing
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dataclasses import dataclass, field

from .errors import DuplicateCapabilityError, LazyReferenceError, RegistrationError, UnknownCapabilityError
from .hookspecs import KINDS, Kind

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*")
_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")


def _check_value(where: str, tp: Any, value: Any) -> Any:
    """Check one metadata value against its declared type; return it normalized (tuples for sequences)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is bool or tp is str:
        if not isinstance(value, tp):
            raise RegistrationError(f"{where} must be a {tp.__name__}, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise RegistrationError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    if origin is typing.Literal:
        if value not in args:
            raise RegistrationError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is tuple:  # an interval (lo, hi)
        try:
            lo, hi = (float(v) for v in value)
        except (TypeError, ValueError):
            raise RegistrationError(f"{where} must be a (lo, hi) pair of numbers, got {value!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
            raise RegistrationError(f"{where} = {value!r} is not a finite interval with lo <= hi")
        return (lo, hi)
    if origin is Sequence:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple, set, frozenset)):
            raise RegistrationError(f"{where} must be a tuple of strings, got {value!r}")
        return tuple(_check_value(f"{where}[{i}]", args[0], v) for i, v in enumerate(value))
    if origin is Mapping:
        if not isinstance(value, Mapping):
            raise RegistrationError(f"{where} must be a mapping, got {value!r}")
        return {str(k): _check_value(f"{where}[{k!r}]", args[1], v) for k, v in value.items()}
    raise TypeError(f"no metadata check for {tp!r}")  # pragma: no cover - a kernel bug, not a plugin's


def check_meta(kind: Kind, name: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Check `register(...)` metadata against the kind's TypedDict: known keys, right types, required present."""
    hints = typing.get_type_hints(kind.meta)
    unknown = sorted(set(meta) - set(hints))
    if unknown:
        accepted = ", ".join(sorted(hints)) or "none"
        raise RegistrationError(f"{kind.name} {name!r}: unknown metadata {', '.join(map(repr, unknown))} "
                                f"({kind.name} registrations accept: {accepted})")
    missing = sorted(kind.meta.__required_keys__ - set(meta))
    if missing:
        raise RegistrationError(f"{kind.name} {name!r} needs {', '.join(f'{k}=' for k in missing)} "
                                f"(see the {kind.hook} hook's docstring)")
    out = {k: _check_value(f"{kind.name} {name!r}: {k}", hints[k], v) for k, v in meta.items()}
    if kind.name == "operator" and not out["params"]:
        raise RegistrationError(f"operator {name!r} needs params={{'name': (lo, hi), ...}} (admissible intervals)")
    return out


@dataclass(eq=False)
class Capability:
    """A registered capability: what it is, who gave it, at which version; `obj` resolves a lazy reference."""

    kind: str
    name: str
    ref: Any = field(repr=False)  # the object itself, or "module:attr" imported on first use
    plugin: str
    distribution: str | None
    version: str | None
    meta: Mapping[str, Any] = field(default_factory=dict, repr=False)
    _obj: Any = field(default=None, init=False, repr=False)

    @property
    def lazy(self) -> bool:
        """Tell whether the capability is given as a "module:attr" reference."""
        return isinstance(self.ref, str) and _REF.fullmatch(self.ref) is not None

    @property
    def obj(self) -> Any:
        """Return the capability object, importing a lazy reference on first use."""
        if self._obj is None:
            self._obj = self._resolve() if self.lazy else self.ref
        return self._obj

    def _resolve(self) -> Any:
        import pkgutil  # not at the top: most processes never resolve a reference

        try:
            return pkgutil.resolve_name(self.ref)  # imports the module, then walks the dotted attribute
        except Exception as exc:  # reported naming plugin, capability and reference
            raise LazyReferenceError(self.plugin, self.kind, self.name, self.ref,
                                     f"{type(exc).__name__}: {exc}") from None

    @property
    def origin(self) -> str:
        """Say which plugin (and distribution version) registered this capability."""
        dist = f" ({self.distribution} {self.version})" if self.distribution else ""
        return f"plugin {self.plugin!r}{dist}"


class Registry:
    """Capabilities by kind and name, and the plugins they came from; filled by the plugin loader."""

    def __init__(self) -> None:
        self._caps: dict[tuple[str, str], Capability] = {}
        self.plugins: dict[str, Any] = {}  # name -> mdqcore.plugins.PluginInfo

    def make_capability(self, kind: str, name: Any, obj: Any, *, plugin: str, distribution: str | None,
                        version: str | None, meta: Mapping[str, Any]) -> Capability:
        """Check one `register(...)` call and return the capability it describes (not yet added)."""
        if kind not in KINDS:
            raise RegistrationError(f"unknown capability kind {kind!r} (kinds: {', '.join(KINDS)})")
        k = KINDS[kind]
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise RegistrationError(
                f"{kind} name {name!r} is not valid: use letters, digits, '_', '.', '-' and start with a letter or digit"
            )
        if obj is None and k.needs_obj:
            raise RegistrationError(f"{kind} {name!r}: register(name, obj) needs an object, got None "
                                    f"(a {kind} is {k.obj}; give it or a 'module:attr' reference)")
        if isinstance(obj, str) and k.needs_obj and not _REF.fullmatch(obj):
            raise RegistrationError(f"{kind} {name!r}: {obj!r} is not a lazy reference; write 'package.module:attr'")
        return Capability(kind, name, obj, plugin, distribution, version, check_meta(k, name, meta))

    def add_plugin(self, info: Any) -> None:
        """Record a plugin (loaded or broken) under its name; the first record of a name stays."""
        self.plugins.setdefault(info.name, info)

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

    def add(self, cap: Capability) -> None:
        """Add one capability; a second one with the same kind and name is an error naming both."""
        self.add_all([cap])

    def get(self, kind: str, name: str) -> Capability:
        """Return the capability of this kind and name, or raise naming what is available."""
        try:
            return self._caps[(kind, name)]
        except KeyError:
            if kind not in KINDS:
                raise UnknownCapabilityError("capability kind", kind, list(KINDS)) from None
            raise UnknownCapabilityError(kind, name, self.names(kind)) from None

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


__all__ = ["Capability", "KINDS", "Registry", "check_meta"]
