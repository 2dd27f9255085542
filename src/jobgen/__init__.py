"""jobgen: render, lint, run and submit Azure ML v2 jobs for distributed PyTorch training."""

__version__ = "0.1.0"
