"""labelloop.models."""
