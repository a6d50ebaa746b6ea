"""mdq's kernel: hooks, plugin registry, versioned models. The one import a plugin author needs."""

from importlib.metadata import PackageNotFoundError, version

from .errors import (
    DocumentError, DuplicateCapabilityError, MdqError, PackageError, PluginError, Problem,
    RegistrationError, UnknownCapabilityError,
)
from .hookspecs import hookimpl
from .model import (
    ATOM_TYPES, Atom, Gate, GateResult, Idx, Kpi, Len, MdqPackage, Op, Provenance, Rollback,
    canonical_json, load_package, package_schema,
)
from .plugins import PluginInfo, load as load_plugins
from .registry import KINDS, Capability, Registry

try:
    __version__ = version("mdqcore")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = [
    "ATOM_TYPES", "Atom", "Capability", "DocumentError", "DuplicateCapabilityError", "Gate", "GateResult",
    "Idx", "KINDS", "Kpi", "Len", "MdqError", "MdqPackage", "Op", "PackageError", "PluginError", "PluginInfo",
    "Problem", "Provenance", "RegistrationError", "Registry", "Rollback", "UnknownCapabilityError",
    "__version__", "canonical_json", "hookimpl", "load_package", "load_plugins", "package_schema",
]
