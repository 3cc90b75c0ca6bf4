"""``--engine local|ray``, ``--ray-address`` and ``--out``: the options ``predict`` and ``features`` share.

Kept apart from the command modules and free of heavy imports: the Ray engine
itself (``workbench.scale.ray_engine``) is imported only when a job runs on it.
"""
from __future__ import annotations

import argparse

from workbench.cli import CommandError


def add_engine_arguments(parser: argparse.ArgumentParser, example: str, columns: str) -> None:
    """--engine, --ray-address, --out: the same for predict and features."""
    parser.add_argument("--engine", choices=("local", "ray"), default="local",
                        help="local: this process (default); ray: Ray Data, for archives of 10^5-10^6 photos, "
                             "on a local Ray or a cluster. PATH may also be a glob or @LIST (a file of paths)")
    parser.add_argument("--ray-address", metavar="ADDRESS", default=None,
                        help="with --engine ray: 'local' starts Ray on this machine (the default, unless RAY_ADDRESS "
                             "is set); 'auto', HOST:PORT or ray://HOST:10001 reach a running cluster")
    parser.add_argument("--out", metavar="FILE", default=None,
                        help=f"with --engine ray: the Parquet file to write (e.g. {example}; columns {columns}); "
                             f"a rerun with the same --out skips photos already done and finishes a killed job")


def ray_document(job, **fields) -> dict:
    """The JSON of a Ray job: where its rows went and how many of each kind."""
    return {"engine": "ray", **fields, "out": str(job.out), "rows": job.rows, "new": job.new,
            "skipped": job.skipped, "failed": job.failed, "resumed_parts": job.resumed_parts,
            "seconds": round(job.seconds, 3), "ray_address": job.address, "runtime": job.runtime, "notes": job.notes}


def check_engine_arguments(args: argparse.Namespace, local_only: dict[str, bool]) -> None:
    if args.engine != "ray":
        if args.out or args.ray_address:
            raise CommandError("--out and --ray-address go with --engine ray")
        return
    if not args.out:
        raise CommandError("--engine ray writes its results to a Parquet file: give --out FILE.parquet")
    used = [flag for flag, given in local_only.items() if given]
    if used:
        raise CommandError(f"{', '.join(used)} work(s) with the local engine only (leave out --engine ray)")
