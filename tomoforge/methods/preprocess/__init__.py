"""From movies to clean tilt images: motion correction, gain, X-ray and hot-pixel removal, dose filter."""
