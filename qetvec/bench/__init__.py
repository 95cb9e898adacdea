"""Benchmarks behind `qetvec bench`: methods at a byte budget, measurement runs, reports."""
