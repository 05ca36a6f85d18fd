"""vtrack.kernels."""
