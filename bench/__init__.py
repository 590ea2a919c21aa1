"""Benchmarks (`make bench`): each module exposes ``main()`` printing figures and ratios measured in one run."""
