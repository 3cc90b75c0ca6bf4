"""The ``--out`` Parquet file of a Ray job, written so that a killed job loses only the batches in flight.

``OUT`` (say ``scores.parquet``) holds the merged rows of finished jobs. While a
job runs, each batch it finishes is written at once to ``OUT.parts/part-*.parquet``
under a temporary name and renamed, so a part is whole or absent, never half
written: after a SIGKILL, ``OUT`` and every part are readable Parquet. A rerun
reads both, skips photos whose content hash is already done, and at the end
merges everything into ``OUT`` (one row per path, the latest row winning) and
removes the parts. Rows carry an ``error`` instead of a result for files that
could not be used; those are tried again by a rerun.

The file's schema metadata names what produced it (run id and model hash, or
backbone and weights id), so a rerun with another model refuses to mix results.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.errors import BadInput

META_KEY = b"workbench"
PART_GLOB = "part-*.parquet"


def _schema(kind: str, distribution: bool, identity: dict[str, Any]):
    import pyarrow as pa

    columns = [("path", pa.string()), ("sha256", pa.string())]
    if kind == "scores":
        columns += [("score", pa.float64()), ("std", pa.float64())]
        if distribution:
            columns.append(("distribution", pa.list_(pa.float64())))
    else:
        columns.append(("features", pa.list_(pa.float32())))
    columns.append(("error", pa.string()))
    meta = {META_KEY: json.dumps({"kind": kind, **identity}, sort_keys=True).encode()}
    return pa.schema(columns, metadata=meta)


@dataclass
class Done:
    """What earlier (finished or killed) jobs left: the rows with a result, by content hash."""

    by_sha: dict[str, tuple[int, int]] = field(default_factory=dict)  # sha256 -> (table, row) of a row with a result
    path_sha: dict[str, str] = field(default_factory=dict)  # path -> sha256 of its row with a result
    parts_left: int = 0  # parts of a killed job found (merged at the end of this one)
    tables: list = field(default_factory=list, repr=False)

    def row(self, sha: str) -> dict:
        """The full row done for this content (all columns)."""
        table, index = self.by_sha[sha]
        return self.tables[table].slice(index, 1).to_pylist()[0]


class ResultFile:
    """``OUT`` and its parts folder, for results of one ``kind`` ("scores" | "features")."""

    def __init__(self, out: str | Path, kind: str, identity: dict[str, Any], *, distribution: bool = False) -> None:
        self.out = Path(out).expanduser().resolve()
        if self.out.is_dir():
            raise BadInput(f"--out {self.out} is a folder; give a file name such as scores.parquet")
        self.kind, self.identity = kind, identity
        self.schema = _schema(kind, distribution, identity)
        self.parts = self.out.with_name(self.out.name + ".parts")
        self.result_column = "score" if kind == "scores" else "features"
        self._seq = 0

    # ------------------------------------------------------------ reading
    def _tables(self):
        """(source, table) for OUT and each part, oldest first; refuses results of another model."""
        import pyarrow.parquet as pq

        sources = ([self.out] if self.out.is_file() else []) + sorted(self.parts.glob(PART_GLOB))
        for source in sources:
            try:
                table = pq.read_table(source)
            except Exception as exc:  # not written by us (parts are renamed into place whole)
                raise BadInput(f"{source} is not a readable Parquet file ({exc}); move it away or "
                               f"choose another --out") from None
            meta = json.loads((table.schema.metadata or {}).get(META_KEY, b"{}"))
            mine = {"kind": self.kind, **self.identity}
            if meta != mine:
                raise BadInput(f"{source} holds results of {_describe(meta)}, not of {_describe(mine)}; "
                               f"choose another --out (or delete it to start again)")
            yield source, table

    def read_done(self) -> Done:
        done = Done()
        for source, table in self._tables():
            done.parts_left += source != self.out
            t = len(done.tables)
            done.tables.append(table)
            # column-wise: a million rows of distributions would be slow as Python dicts
            columns = [table.column(c).to_pylist() for c in ("path", "sha256", "error")]
            results = table.column(self.result_column).is_null().to_pylist()
            for index, (path, sha, error, missing) in enumerate(zip(*columns, results)):
                if not missing and not error:
                    done.by_sha[sha] = (t, index)
                    done.path_sha[path] = sha
        return done

    # ------------------------------------------------------------ writing
    def write_part(self, rows: list[dict]) -> Path | None:
        """Write ``rows`` (dicts with the schema's columns) as one new part, atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not rows:
            return None
        self.parts.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        # time first: parts sort oldest first across runs, so the latest row for a path wins the merge
        name = f"part-{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}.parquet"
        table = pa.Table.from_pylist(rows, schema=self.schema)
        tmp = self.parts / f".{name}.tmp"
        pq.write_table(table, tmp)
        os.replace(tmp, self.parts / name)
        return self.parts / name

    def merge(self) -> int:
        """Fold the parts into OUT (one row per path, latest wins, sorted by path); returns its row count."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        tables = [table.cast(self.schema) for _, table in self._tables()]
        table = pa.concat_tables(tables) if tables else self.schema.empty_table()
        if table.num_rows:  # one row per path, the latest one (parts are read oldest first)
            order = table.append_column("_row", pa.array(range(table.num_rows), pa.int64()))
            latest = order.group_by("path").aggregate([("_row", "max")]).column("_row_max")
            table = table.take(latest).sort_by("path")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(f".{self.out.name}.{os.getpid()}.tmp")
        pq.write_table(table, tmp)
        os.replace(tmp, self.out)
        shutil.rmtree(self.parts, ignore_errors=True)
        return table.num_rows


def _describe(meta: dict) -> str:
    if not meta:
        return "an unknown producer"
    if meta.get("kind") == "scores":
        return f"scorer {meta.get('scorer')} (model {str(meta.get('model'))[:12]})"
    return f"backbone {meta.get('backbone')} ({meta.get('view')}, weights {str(meta.get('weights_id'))[:12]})"
