"""Import protocols: tilt series and movies from mdoc files (also while they are acquired), tomograms, coordinates."""
