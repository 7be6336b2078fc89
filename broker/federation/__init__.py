"""Talking to agency connectors: signed requests, deadlines, breakers, and linking."""
