"""vtrack.eval."""
