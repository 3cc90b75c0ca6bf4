"""images.py: every format and mode in, RGB out; bad files refused with a readable reason."""
from __future__ import annotations

import io
import shutil
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from workbench.images import (
    SUPPORTED_EXTENSIONS,
    ImageError,
    check_image,
    load_image,
    load_luma,
    read_info,
    thumbnail,
)


def halves(width=60, height=40) -> Image.Image:
    """Left half red, right half blue: orientation mistakes are visible."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2] = (255, 0, 0)
    pixels[:, width // 2:] = (0, 0, 255)
    return Image.fromarray(pixels)


def close(color, expected, tol=40) -> bool:
    return all(abs(int(a) - int(b)) <= tol for a, b in zip(color, expected))


@pytest.mark.parametrize("ext, options", [
    (".jpg", {"quality": 95}), (".png", {}), (".webp", {"quality": 95}), (".bmp", {}), (".tiff", {}),
    (".heic", {"quality": 90}),
])
def test_formats_load_as_rgb_with_their_pixels(tmp_path, ext, options, photos):
    assert ext in SUPPORTED_EXTENSIONS
    path = tmp_path / f"photo{ext}"
    Image.fromarray(photos["chelsea"]).save(path, **options)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (451, 300)
    diff = np.abs(np.asarray(image, float) - photos["chelsea"].astype(float)).mean()
    assert diff < 6  # the photo itself, not a blank or a wrong channel order
    assert check_image(path).width == 451


def test_gif_gives_its_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    red, blue = Image.new("RGB", (20, 20), (255, 0, 0)), Image.new("RGB", (20, 20), (0, 0, 255))
    red.save(path, save_all=True, append_images=[blue], duration=100)
    image = load_image(path)
    assert image.mode == "RGB" and close(image.getpixel((10, 10)), (255, 0, 0))


@pytest.mark.parametrize("orientation, size, top_left, bottom_right", [
    (1, (60, 40), (255, 0, 0), (0, 0, 255)),
    (3, (60, 40), (0, 0, 255), (255, 0, 0)),   # upside down
    (6, (40, 60), (255, 0, 0), (0, 0, 255)),   # rotate 90° clockwise: the left half becomes the top
    (8, (40, 60), (0, 0, 255), (255, 0, 0)),   # rotate 90° anticlockwise: the right half becomes the top
])
def test_exif_orientation_is_applied(tmp_path, orientation, size, top_left, bottom_right):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "phone.jpg"
    halves().save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.size == size
    assert close(image.getpixel((2, 2)), top_left)
    assert close(image.getpixel((size[0] - 3, size[1] - 3)), bottom_right)
    assert read_info(path).width == size[0]


def test_draft_decodes_big_jpegs_smaller_but_never_below_min_size(tmp_path):
    path = tmp_path / "big.jpg"
    halves(3000, 2000).save(path, quality=90)
    small = load_image(path, min_size=(224, 224))
    assert 224 <= min(small.size) and small.size[0] < 3000
    assert small.size == (375, 250)  # 1/8 scale: the codec skipped most of the work
    exif = Image.Exif()
    exif[0x0112] = 6
    halves(3000, 2000).save(path, quality=90, exif=exif)
    portrait = load_image(path, min_size=(100, 300))
    assert portrait.size[0] < portrait.size[1] and portrait.size[0] >= 100 and portrait.size[1] >= 300
    assert load_image(path).size == (2000, 3000)


def test_luma_decodes_only_y_at_reduced_scale_and_matches_rgb_then_grey(tmp_path, photos):
    big = Image.fromarray(photos["astronaut"]).resize((2048, 2048), Image.Resampling.BICUBIC)
    path = tmp_path / "big.jpg"
    big.save(path, quality=90)
    luma = load_luma(path, 300)
    assert luma.mode == "L" and luma.size == (512, 512)  # 1/4: the largest reduction keeping both sides >= 300
    via_rgb = np.asarray(load_image(path, min_size=(300, 300)).convert("L"), np.int16)
    difference = np.abs(np.asarray(luma, np.int16) - via_rgb)
    assert difference.mean() < 0.6 and difference.max() <= 3  # rounding only: Y is what the JPEG stores
    Image.fromarray(photos["astronaut"]).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    grey = load_luma(tmp_path / "cmyk.jpg", 64)
    reference = np.asarray(Image.fromarray(photos["astronaut"]).convert("L").resize(grey.size), np.int16)
    assert grey.mode == "L" and np.abs(np.asarray(grey, np.int16) - reference).mean() < 12
    Image.fromarray(photos["astronaut"]).convert("RGBA").save(tmp_path / "alpha.png")
    assert load_luma(tmp_path / "alpha.png", 64).size == (512, 512)  # not a JPEG: full decode
    path.write_bytes(path.read_bytes()[:20000])
    with pytest.raises(ImageError, match="big.jpg: the file is truncated"):
        load_luma(path, 300)


def test_palette_rgba_la_cmyk_grey_and_bilevel_become_rgb(tmp_path):
    rgba = Image.new("RGBA", (10, 10), (255, 0, 0, 0))  # fully transparent red: white on screen
    rgba.paste((0, 0, 255, 255), (5, 0, 10, 10))
    cases = {
        "rgba.png": (rgba, [(2, 2, (255, 255, 255)), (7, 7, (0, 0, 255))]),
        "la.png": (Image.new("LA", (10, 10), (0, 0)), [(5, 5, (255, 255, 255))]),
        "palette.png": (Image.new("RGB", (10, 10), (0, 200, 0)).convert("P"), [(5, 5, (0, 200, 0))]),
        "cmyk.jpg": (Image.new("CMYK", (10, 10), (0, 255, 255, 0)), [(5, 5, (255, 0, 0))]),
        "grey.png": (Image.new("L", (10, 10), 100), [(5, 5, (100, 100, 100))]),
        "bilevel.bmp": (Image.new("1", (10, 10), 1), [(5, 5, (255, 255, 255))]),
    }
    transparent_gif = Image.new("P", (10, 10), 0)
    transparent_gif.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    transparent_gif.info["transparency"] = 0
    cases["transparent.gif"] = (transparent_gif, [(5, 5, (255, 255, 255))])
    for name, (image, checks) in cases.items():
        image.save(tmp_path / name, **({"transparency": 0} if name.endswith(".gif") else {}))
        loaded = load_image(tmp_path / name)
        assert loaded.mode == "RGB", name
        for x, y, color in checks:
            assert close(loaded.getpixel((x, y)), color, tol=12), (name, loaded.getpixel((x, y)))


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path):
    pixels = np.array([[0, 32768, 65535]], dtype=np.uint16).repeat(4, axis=0)
    path = tmp_path / "deep.png"
    Image.fromarray(pixels).save(path)
    assert Image.open(path).mode.startswith("I")
    loaded = np.asarray(load_image(path))
    assert loaded[0, 0].tolist() == [0, 0, 0]
    assert 120 <= loaded[0, 1, 0] <= 135  # clipping would give 255
    assert loaded[0, 2].tolist() == [255, 255, 255]


def png_with_header(width: int, height: int) -> bytes:
    """A valid tiny PNG whose header claims ``width`` x ``height`` pixels."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_bytes(b""), "empty"),
    (lambda p: p.write_text("this is not a photo"), "not an image"),
    (lambda p: p.write_bytes(np.random.default_rng(0).bytes(5000)), "not an image"),
    (lambda p: p.write_bytes(png_with_header(30000, 30000)), "900 megapixels, over the limit of 200"),
    (lambda p: p.write_bytes(png_with_header(15000, 15000)), "15000x15000 is 225 megapixels, over the limit of 200"),
])
def test_bad_files_are_refused_with_a_readable_reason(tmp_path, make, reason):
    path = tmp_path / "bad.jpg"
    make(path)
    with pytest.raises(ImageError, match=reason) as info:
        check_image(path)
    assert str(info.value).startswith("bad.jpg: ")
    with pytest.raises(ImageError):
        load_image(path)


def test_truncated_jpeg_is_refused_at_every_decoding_scale(tmp_path, photos):
    buffer = io.BytesIO()
    Image.fromarray(photos["astronaut"]).save(buffer, format="JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    for kwargs in ({}, {"min_size": (32, 32)}):
        with pytest.raises(ImageError, match="truncated"):
            load_image(path, **kwargs)


def test_bytes_input_and_custom_pixel_limit(photos):
    buffer = io.BytesIO()
    Image.fromarray(photos["coffee"]).save(buffer, format="PNG")
    assert load_image(buffer.getvalue()).size == (600, 400)
    with pytest.raises(ImageError, match="over the limit"):
        load_image(buffer.getvalue(), max_pixels=1000)


def test_thumbnails_are_made_once_per_content_and_size(tmp_path, photos):
    source = tmp_path / "a.jpg"
    Image.fromarray(photos["rocket"]).save(source)  # 640x427
    cache = tmp_path / "thumbs"
    first = thumbnail(source, 64, cache)
    with Image.open(first) as thumb:
        assert thumb.size == (64, 43)
    stamp = first.stat().st_mtime_ns
    copy = tmp_path / "copy with another name.jpg"
    shutil.copy(source, copy)
    assert thumbnail(copy, 64, cache) == first and first.stat().st_mtime_ns == stamp  # reused, not remade
    other = thumbnail(source, 128, cache)
    assert other != first and other.exists()
    assert len(list(cache.rglob("*.jpg"))) == 2
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"nope")
    with pytest.raises(ImageError):
        thumbnail(broken, 64, cache)
