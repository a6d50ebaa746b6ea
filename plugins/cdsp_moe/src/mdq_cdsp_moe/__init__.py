"""CDSP-MoE: experts as projections of one over-complete shared basis (SEEDS.md §4)."""

from .layer import CDSPConfig, CDSPMoE
from .sparse import SparseCDSP

__all__ = ["CDSPConfig", "CDSPMoE", "SparseCDSP"]
