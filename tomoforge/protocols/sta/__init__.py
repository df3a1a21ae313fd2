"""Subtomogram-averaging protocols: extraction, averaging, map-back, import-particles, reconstruct-particle,
postprocess, local-resolution."""
