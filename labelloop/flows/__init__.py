"""labelloop.flows."""
