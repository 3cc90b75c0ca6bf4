"""A persistent sha256 index so 5,000 photos are not re-read to find duplicates."""
from __future__ import annotations

import json
from pathlib import Path

from workbench.fsutil import atomic_write_text, file_sha256


class HashIndex:
    """sha256 per file of a folder (data/.hashes.json), trusted while size and mtime are unchanged.

    Only used under the store's lock; loaded once per operation, saved if changed.
    """

    def __init__(self, path: Path):
        self.path = path
        self.data_dir = path.parent
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
            self.index: dict[str, dict] = loaded if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            self.index = {}
        self.changed = False

    def get(self, name: str) -> str:
        st = (self.data_dir / name).stat()
        known = self.index.get(name)
        if known and known.get("size") == st.st_size and known.get("mtime_ns") == st.st_mtime_ns:
            return known["sha256"]
        digest = file_sha256(self.data_dir / name)
        self.index[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        self.changed = True
        return digest

    def remember(self, name: str, digest: str) -> None:
        st = (self.data_dir / name).stat()
        self.index[name] = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}
        self.changed = True

    def save(self) -> None:
        if self.changed:
            atomic_write_text(self.path, json.dumps(self.index))
            self.changed = False
