"""vtrack.backbones."""
