"""The policy bundle in force, and reloading it without a restart (administrators)."""
