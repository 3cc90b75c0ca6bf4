"""`python -m workbench import` and `dataset` on a realistic, messy folder (real child processes)."""
from __future__ import annotations

import csv
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from workbench.dataset import ScoreStore, import_into_store, scan_source
from workbench.events import drain
from workbench.images import load_image


def png_bomb_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.fixture
def messy_folder(tmp_path, photos) -> Path:
    src = tmp_path / "from the camera"
    src.mkdir()
    Image.fromarray(photos["chelsea"]).save(src / "85_chelsea.jpg", quality=90)
    (src / "copy of 85_chelsea.jpg").write_bytes((src / "85_chelsea.jpg").read_bytes())  # same picture twice
    Image.fromarray(photos["coffee"]).save(src / "7.5_coffee.png")
    Image.fromarray(photos["china"]).save(src / "60 été à la plage.webp", quality=90)
    Image.fromarray(photos["astronaut"]).save(src / "42 astronaut.heic", quality=80)
    Image.fromarray(photos["rocket"]).save(src / "30_rocket.tiff")
    Image.fromarray(photos["flower"]).convert("P").save(src / "55.gif")
    Image.fromarray(photos["flower"][::2, ::2]).save(src / "20.bmp")
    Image.fromarray(photos["coffee"][::-1]).save(src / "IMG_1234.jpg")
    Image.fromarray(photos["china"][::-1]).save(src / "250_too_high.jpg")
    portrait = np.zeros((40, 60, 3), np.uint8)
    portrait[:, :30] = (255, 0, 0)
    portrait[:, 30:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # the phone was held upright: rotate 90° clockwise to display
    Image.fromarray(portrait).save(src / "70_phone.jpg", exif=exif, quality=95)
    (src / "empty.jpg").write_bytes(b"")
    whole = (src / "85_chelsea.jpg").read_bytes()
    (src / "50_cut.jpg").write_bytes(whole[: len(whole) // 2])
    (src / "notes.txt").write_text("scores are in the names")
    (src / "90_bomb.png").write_bytes(png_bomb_header(40000, 40000))
    (src / "old shoot").mkdir()
    (src / ".DS_Store").write_bytes(b"\x00\x01")
    return src


def run_main(capsys, *argv) -> tuple[int, str]:
    """The CLI's main() in this process: same parsing and output, without a 10-20 s start-up."""
    from workbench.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().out


def read_scores(data_dir: Path) -> dict[str, str]:
    with open(data_dir / "scores.csv", newline="", encoding="utf-8") as fh:
        return {row["filename"]: row["score"] for row in csv.DictReader(fh)}


def test_cli_import_of_a_messy_folder(run_cli, workbench_env, messy_folder, photos, capsys):
    data = Path(workbench_env["WORKBENCH_DATA_DIR"])
    Image.fromarray(photos["rocket"]).save(data / "85_chelsea.jpg")  # a different photo already has that name
    before = (data / "85_chelsea.jpg").read_bytes()

    proc = run_cli("import", messy_folder, "--json")
    report = json.loads(proc.stdout)  # stdout holds exactly one JSON document
    assert report["imported"] == 10
    assert report["labelled"] == 8  # 85 (renamed), 7.5, 60, 42, 30, 55, 20, 70
    assert report["unlabelled"] == 2  # IMG_1234 and 250_too_high
    skipped = {s["file"]: s["reason"] for s in report["skipped"]}
    assert set(skipped) == {"copy of 85_chelsea.jpg", "empty.jpg", "50_cut.jpg", "notes.txt", "90_bomb.png", "old shoot/"}
    assert "the same picture as 85_chelsea.jpg in this import" in skipped["copy of 85_chelsea.jpg"]
    assert "empty" in skipped["empty.jpg"]
    assert "truncated" in skipped["50_cut.jpg"]
    assert "not an image" in skipped["notes.txt"]
    assert "1600 megapixels" in skipped["90_bomb.png"] and "decompression bomb" in skipped["90_bomb.png"]
    assert "folder" in skipped["old shoot/"]
    # every skipped file is counted under a named reason: the parts add up to the total
    assert report["skipped_counts"] == {"same picture": 1, "not an image": 1, "unreadable": 3, "folder or link": 1}
    assert sum(report["skipped_counts"].values()) == len(report["skipped"])
    assert {"file": "85_chelsea.jpg", "saved_as": "85_chelsea (1).jpg"} in report["renamed"]
    notes = {n["file"]: n["note"] for n in report["notes"]}
    assert "250 is outside the score range 0–100" in notes["250_too_high.jpg"]
    assert "no number" in notes["IMG_1234.jpg"]
    assert "checking" in proc.stderr  # the tqdm bar went to stderr

    assert (data / "85_chelsea.jpg").read_bytes() == before  # never overwritten
    assert (data / "85_chelsea (1).jpg").read_bytes() == (messy_folder / "85_chelsea.jpg").read_bytes()
    assert read_scores(data) == {
        "85_chelsea (1).jpg": "85", "7.5_coffee.png": "7.5", "60 été à la plage.webp": "60",
        "42 astronaut.heic": "42", "30_rocket.tiff": "30", "55.gif": "55", "20.bmp": "20", "70_phone.jpg": "70",
    }
    on_disk = sorted(p.name for p in data.iterdir() if not p.name.startswith("."))
    assert on_disk == sorted(["85_chelsea.jpg", "85_chelsea (1).jpg", "7.5_coffee.png", "60 été à la plage.webp",
                              "42 astronaut.heic", "30_rocket.tiff", "55.gif", "20.bmp", "IMG_1234.jpg",
                              "250_too_high.jpg", "70_phone.jpg", "scores.csv"])
    phone = load_image(data / "70_phone.jpg")
    assert phone.size == (40, 60)  # stands upright
    assert phone.getpixel((20, 3))[0] > 200 and phone.getpixel((20, 56))[2] > 200  # red on top, blue below
    assert load_image(data / "42 astronaut.heic").size == (512, 512)
    thumbs = list((Path(workbench_env["WORKBENCH_CACHE_DIR"]) / "thumbnails").rglob("*.jpg"))
    assert len(thumbs) == 10  # made during the import, ready for the gallery

    # importing the same folder again is harmless (the engine the CLI runs, in-process: saves a start-up)
    again = drain(import_into_store(scan_source(messy_folder).items, ScoreStore(data, 0, 100))).to_json()
    assert again["imported"] == 0 and again["labelled"] == 0
    assert sum("not copied twice" in s["reason"] for s in again["skipped"]) == 10  # the copy folded in the preview
    code, out = run_main(capsys, "import", str(messy_folder))  # the text says the same parts
    assert code == 0 and ("16 skipped (10 already in the training set, 1 the same picture as another file here, "
                          "1 not an image file, 3 unreadable (empty, truncated, damaged or too large), "
                          "1 a folder or a link (not followed)):") in out

    code, out = run_main(capsys, "dataset", "--json")
    summary = json.loads(out)
    assert (summary["total"], summary["labelled"], summary["unlabelled"]) == (11, 8, 3)
    assert (summary["lowest"], summary["highest"]) == (7.5, 85)
    assert summary["unlabelled_files"] == ["250_too_high.jpg", "85_chelsea.jpg", "IMG_1234.jpg"]
    assert [b["count"] for b in summary["histogram"]] == [1, 0, 1, 1, 1, 1, 1, 1, 1, 0]
    human = run_main(capsys, "dataset")[1]
    assert "11 images: 8 labelled" in human and "IMG_1234.jpg" in human


def test_cli_import_with_a_custom_pattern(workbench_env, photos, tmp_path, capsys):
    src = tmp_path / "named"
    src.mkdir()
    Image.fromarray(photos["chelsea"]).save(src / "cat_score-72.jpg")
    Image.fromarray(photos["coffee"]).save(src / "85_coffee.jpg")  # the default rule would say 85
    code, out = run_main(capsys, "import", src, "--pattern", r"score-(?P<score>\d+)", "--json")
    report = json.loads(out)
    assert code == 0 and (report["imported"], report["labelled"], report["unlabelled"]) == (2, 1, 1)
    assert read_scores(Path(workbench_env["WORKBENCH_DATA_DIR"])) == {"cat_score-72.jpg": "72"}


def test_cli_import_errors_are_clear_and_change_nothing(workbench_env, tmp_path, capsys):
    code, out = run_main(capsys, "import", tmp_path / "nowhere", "--json")
    assert code == 2 and "does not exist" in json.loads(out)["error"]
    (tmp_path / "src").mkdir()
    code, out = run_main(capsys, "import", tmp_path / "src", "--pattern", "(", "--json")
    assert code == 2 and "not a valid regular expression" in json.loads(out)["error"]
    assert list(Path(workbench_env["WORKBENCH_DATA_DIR"]).iterdir()) == []
