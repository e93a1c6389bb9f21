"""Unmask's detection library: face pipeline, image and video models, metrics.

Plain Python + TensorFlow, no Django: everything here is importable and testable on its own.
The platform reaches it only through `scans.analyzers`, which turns active model versions into an
`ml.pipeline.Analyzer`.
"""
