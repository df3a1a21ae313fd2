"""Preprocessing protocols: motion correction, X-ray eraser, dose filter, view exclusion, binning."""
