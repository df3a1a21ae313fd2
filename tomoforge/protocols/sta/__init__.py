"""Subtomogram-averaging protocols: import-particles, reconstruct-particle, postprocess, local-resolution."""
