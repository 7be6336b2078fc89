"""The family query: one question about a family, answered by every agency that may."""
