"""CTF protocols: estimation, exclusion, correction, import/export."""
