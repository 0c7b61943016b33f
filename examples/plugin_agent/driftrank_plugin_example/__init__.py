"""Example driftrank plugin: a most-clicked-first agent registered by entry point."""
