"""Particle picking: template matching and the coordinate tools (duplicates, consensus, normals)."""
