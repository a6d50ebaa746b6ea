"""CDSP-MoE: experts as projections of one over-complete shared basis.

The layer classes load torch, so they are imported on first access, not with the package
(registering the plugin must stay light).
"""

__all__ = ["CDSPConfig", "CDSPMoE", "SparseCDSP"]


def __getattr__(name: str) -> object:
    if name in ("CDSPConfig", "CDSPMoE"):
        from . import layer

        return getattr(layer, name)
    if name == "SparseCDSP":
        from .sparse import SparseCDSP

        return SparseCDSP
    raise AttributeError(name)
