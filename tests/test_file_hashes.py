"""One per-process SHA-256 cache serves thumbnails, features, folds and weight checks."""
import hashlib
import os

from workbench import fsutil


def test_a_changed_file_is_hashed_again_even_at_the_same_size(tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes(b"first version")
    assert fsutil.cached_file_sha256(photo) == hashlib.sha256(b"first version").hexdigest()
    photo.write_bytes(b"other version")  # same size: only mtime and content differ
    os.utime(photo, ns=(1, 1))
    assert fsutil.cached_file_sha256(photo) == hashlib.sha256(b"other version").hexdigest()


def test_the_same_unchanged_file_is_read_once(tmp_path, monkeypatch):
    photo = tmp_path / "b.jpg"
    photo.write_bytes(b"x" * 4096)
    reads = []
    real = fsutil.file_sha256
    monkeypatch.setattr(fsutil, "file_sha256", lambda p: reads.append(p) or real(p))
    first = fsutil.cached_file_sha256(photo)
    assert fsutil.cached_file_sha256(str(photo)) == first  # a str and a Path name one file
    assert len(reads) == 1
    fsutil.forget_file_hashes()
    assert fsutil.cached_file_sha256(photo) == first and len(reads) == 2
