"""The nightly injury-risk job (see job.py)."""
