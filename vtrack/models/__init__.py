"""Trackers built from shared layers (``vtrack.models.layers``) and the fused kernels."""
from vtrack.models.registry import get_family, list_families, register_family

__all__ = ["get_family", "list_families", "register_family"]
