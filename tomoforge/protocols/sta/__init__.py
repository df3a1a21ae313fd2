"""Subtomogram averaging protocols: extraction, averaging, map-back, particle reconstruction and validation."""
