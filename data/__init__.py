"""Audio sources, segmenting, mel conversion and the Ray Data pipeline that writes Parquet.

Knows nothing of Tune or MLflow: `platform` drives it and `trainables` reads its output.
"""
