"""Particle picking: template matching (angular sampling, template weighting, scores, peaks) and the
coordinate tools (duplicates, consensus, normals)."""
