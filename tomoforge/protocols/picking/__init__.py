"""Picking protocols: template matching and the coordinate tools (duplicates, consensus, normals, export)."""
