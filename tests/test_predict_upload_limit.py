"""Predict's one-photo upload is refused from its header when it has too many pixels: a 76 KB PNG of
20000x20000 once held the server for 24 s and 2 GB inside gr.Image's own decode before it was refused."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import gradio as gr
import pytest
from gradio.data_classes import FileData
from PIL import Image

from workbench.ui import predict_tab


def huge_png(path: Path, side: int) -> Path:
    """A valid all-black greyscale PNG of ``side`` x ``side``, written a row at a time (a few MB of memory)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row, parts = zlib.compressobj(9), b"\0" * (side + 1), []
    for _ in range(side):
        parts.append(packer.compress(row))
    parts.append(packer.flush())
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def photo_box(settings):
    with gr.Blocks() as blocks:
        predict_tab.build(settings)
    return next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == "predict-photo")


def test_an_over_limit_photo_is_refused_from_its_header_without_decoding_it(photo_box, tmp_path, monkeypatch):
    bomb = huge_png(tmp_path / "bomb.png", 20_000)
    assert bomb.stat().st_size < 2_000_000 and Image.open(bomb).size == (20_000, 20_000)
    decoded = []
    real_load = Image.Image.load
    monkeypatch.setattr(Image.Image, "load", lambda self: decoded.append(self.size) or real_load(self))
    with pytest.raises(gr.Error, match=r"big\.png: 20000x20000 is 400 megapixels, over the limit of 200"):
        photo_box.preprocess(FileData(path=str(bomb), orig_name="big.png"))
    assert decoded == []  # refused from the header: no pixel was decoded

    normal = tmp_path / "normal.jpg"
    Image.new("RGB", (300, 200), "orange").save(normal)
    kept = photo_box.preprocess(FileData(path=str(normal), orig_name="normal.jpg"))
    assert Image.open(kept).size == (300, 200) and decoded  # a normal photo still reaches the preview and scorer
