"""VLT (Guo et al., NeurIPS 2022): vision-language tracking with ModaMixer and an asymmetric
SPOS architecture search; ``model.head: scar`` gives VLT_SCAR, ``tt`` gives VLT_TT.

Registered as the tracker family ``"vlt"`` (see :mod:`vtrack.models.registry`).
"""
from vtrack.models.vlt.config import LanguageConfig, SCARConfig, TTConfig, VLTConfig, VLTTrackerConfig
from vtrack.models.vlt.family import VLTFamily
from vtrack.models.vlt.language import (
    HashingLanguageEncoder,
    LanguageEncoder,
    TransformersLanguageEncoder,
    build_language_encoder,
)
from vtrack.models.vlt.modamixer import ModaMixer
from vtrack.models.vlt.model import VLTModel, feature_size, load_arch, save_arch, score_size
from vtrack.models.vlt.search import EvolutionConfig, SearchResult, evolutionary_search
from vtrack.models.vlt.supernet import Architecture, SupernetBackbone, SupernetSpec
from vtrack.models.vlt.tracker import VLTTracker

__all__ = [
    "Architecture", "EvolutionConfig", "HashingLanguageEncoder", "LanguageConfig", "LanguageEncoder", "ModaMixer",
    "SCARConfig", "SearchResult", "SupernetBackbone", "SupernetSpec", "TTConfig", "TransformersLanguageEncoder",
    "VLTConfig", "VLTFamily", "VLTModel", "VLTTracker", "VLTTrackerConfig", "build_language_encoder",
    "evolutionary_search", "feature_size", "load_arch", "save_arch", "score_size",
]
