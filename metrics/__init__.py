"""Measurements: FID, LPIPS, forget rates, membership attacks, downstream accuracy, speedup."""
