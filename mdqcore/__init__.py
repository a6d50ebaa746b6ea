"""mdq's kernel: hooks, plugin registry, versioned models. The one import a plugin author needs."""

from .errors import (
    DocumentError, DuplicateCapabilityError, LazyReferenceError, LedgerError, MdqError, PackageError, PluginError,
    PolicyError, Problem, RegistrationError, Rejected, SignatureError, UnknownCapabilityError,
)
from .hookspecs import KINDS, hookimpl
from .plugins import PluginInfo, load as load_plugins
from .registry import Capability, Registry

# the models (and cattrs behind them) load on first use: registering plugins and `mdq --help` need neither
_MODEL = {"ATOM_TYPES", "Atom", "ControlState", "Gate", "GateResult", "Idx", "Kpi", "Len", "MdqPackage", "Op",
          "Provenance", "Rollback", "canonical_json", "load_package", "package_schema"}


def __getattr__(name: str) -> object:
    if name in _MODEL:
        from . import model

        return getattr(model, name)
    if name == "__version__":  # importlib.metadata costs ~15 ms to import: only when asked
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("mdqcore")
        except PackageNotFoundError:  # running from a source tree that was never installed
            return "0.0.0+unknown"
    raise AttributeError(f"module 'mdqcore' has no attribute {name!r}")


__all__ = [
    "ATOM_TYPES", "Atom", "Capability", "ControlState", "DocumentError", "DuplicateCapabilityError", "Gate",
    "GateResult", "Idx", "KINDS", "Kpi", "LazyReferenceError", "LedgerError", "Len", "MdqError", "MdqPackage", "Op",
    "PackageError", "PluginError", "PluginInfo", "PolicyError", "Problem", "Provenance", "RegistrationError",
    "Registry", "Rejected", "Rollback", "SignatureError", "UnknownCapabilityError", "__version__", "canonical_json",
    "hookimpl", "load_package", "load_plugins", "package_schema",
]
