"""Scoring and feature extraction over archives too large for one process: the Ray engine.

    python -m workbench predict RUN_ID PATH... --engine ray --out scores.parquet [--ray-address auto]
    python -m workbench features --backbone NAME PATH... --engine ray --out features.parquet

``results`` keeps the Parquet output resumable (parts written one by one, merged
at the end); ``ray_engine`` builds the Ray Data pipeline over the local inference
code. Neither imports ray or pyarrow at import time of the CLI: only a Ray job does.
"""
