"""Particle picking: template matching, angular sampling, peak extraction, and the coordinate tools."""
