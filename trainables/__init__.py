"""What runs inside a Tune trial: networks, losses, the training loop, FID.

Knows `data` (to read Parquet) but not `platform`: this code runs on Ray workers.
"""
