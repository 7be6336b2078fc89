"""The IG officers' API: audit search, proofs, subject access, break-glass review, anomalies."""
