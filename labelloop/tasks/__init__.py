"""labelloop.tasks."""
