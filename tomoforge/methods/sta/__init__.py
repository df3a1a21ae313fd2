"""Subtomogram averaging: extraction, averaging, map-back, particle reconstruction and validation."""
