"""labelloop.labeling."""
