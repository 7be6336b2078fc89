"""Local matching: identifier match, Fellegi-Sunter scoring, linkage tokens, references."""
