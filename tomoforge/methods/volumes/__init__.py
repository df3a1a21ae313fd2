"""Maps as references: resizing (``resize``: rescale, crop/pad, low-pass, invert, recentre) and masks (``masks``)."""
