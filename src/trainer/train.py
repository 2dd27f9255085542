"""Training entry point (placeholder until the trainer issue lands; see issue 3)."""
