"""The nightly HTML report (render.py, plots.py, templates/)."""
