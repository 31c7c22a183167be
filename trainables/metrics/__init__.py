"""Metrics of generated mel spectrograms: FID, KID, density/coverage, and the embeddings they are measured in."""
