"""vtrack.layers."""
