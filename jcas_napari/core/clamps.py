"""Numerical clamps shared by the losses (one place, so the fused and reference forms agree)."""

P_MIN = 1e-10
P_MAX = 1 - 1e-7  # the largest float32 below 1 that log1p(-p) handles with a finite gradient
LOG_MIN = -100.0  # torch's binary_cross_entropy clamps log terms at -100 too
