"""The Junction broker: one family query across every agency, checked, logged, explained."""
