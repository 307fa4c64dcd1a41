"""Side-by-side benchmarks for salespipeline; run ``python benchmarks/run.py``.

Every figure is a ratio against a reference measured in the same run, because the
machines these run on are shared and noisy. Nothing here is imported by the library.
"""
