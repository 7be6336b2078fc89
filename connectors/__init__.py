"""What an agency runs: a connector built from a mapping file, and the shared protocol."""
