"""Prefect tasks: thin wrappers over the library."""
