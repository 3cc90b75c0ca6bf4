"""Star ratings in and out, checked against two independent readers and writers: exiftool and exiv2.

Sidecars are written by ``exiftool`` the way Lightroom (``IMG_1.xmp``) and
darktable (``IMG_1.jpg.xmp``) write them, imported, then written back by the
workbench and read again with ``exiftool`` and ``exiv2``.
"""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from workbench.dataset.ratings import StarMapping, stars_for_scores, write_star_ratings
from workbench.dataset.xmp import SCORE_KEY, read_rating, write_rating
from workbench.errors import BadInput

pytestmark = pytest.mark.skipif(not (shutil.which("exiftool") and shutil.which("exiv2")),
                                reason="exiftool and exiv2 are needed (make test installs them)")


def exiftool(*args) -> str:
    return subprocess.run(["exiftool", "-q", "-q", *map(str, args)], check=True, capture_output=True,
                          text=True).stdout


def exiftool_json(path: Path) -> dict:
    return json.loads(exiftool("-j", "-G1", "-n", "-a", path))[0]


def exiv2_xmp(path: Path) -> dict[str, str]:
    out = subprocess.run(["exiv2", "-PXkv", str(path)], check=True, capture_output=True, text=True).stdout
    return {key: value.strip() for key, _, value in (line.partition(" ") for line in out.splitlines()) if key}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def shoot(tmp_path, photos) -> Path:
    """A photo manager's folder: every way a rating is kept, plus a name-only score."""
    folder = tmp_path / "shoot"
    folder.mkdir()
    names = ["lightroom.jpg", "darktable.jpg", "embedded.jpg", "exif.jpg", "rejected.jpg", "unrated.jpg",
             "85_named.jpg", "both.jpg"]
    for name, pixels in zip(names, [*photos.values(), *(p[::-1] for p in photos.values())]):  # all distinct
        Image.fromarray(pixels).save(folder / name, quality=85)
    # Lightroom / Bridge: IMG.xmp beside IMG.jpg, with a colour label and keywords
    exiftool("-o", folder / "lightroom.xmp", "-XMP-xmp:Rating=4", "-XMP-xmp:Label=Red",
             "-XMP-dc:Subject=beach", folder / "lightroom.jpg")
    # darktable: IMG.jpg.xmp
    exiftool("-o", folder / "darktable.jpg.xmp", "-XMP-xmp:Rating=2", folder / "darktable.jpg")
    exiftool("-overwrite_original", "-XMP-xmp:Rating=5", folder / "embedded.jpg")
    exiftool("-overwrite_original", "-EXIF:Rating=3", folder / "exif.jpg")
    exiftool("-o", folder / "rejected.xmp", "-XMP-xmp:Rating=-1", folder / "rejected.jpg")
    exiftool("-o", folder / "unrated.xmp", "-XMP-xmp:Rating=0", folder / "unrated.jpg")
    # both styles present: darktable's name.ext.xmp is specific to this file and wins
    exiftool("-o", folder / "both.jpg.xmp", "-XMP-xmp:Rating=1", folder / "both.jpg")
    exiftool("-o", folder / "both.xmp", "-XMP-xmp:Rating=5", folder / "both.jpg")
    return folder


def run_main(capsys, *argv) -> tuple[int, str]:
    from workbench.cli import main

    code = main([str(a) for a in argv])
    return code, capsys.readouterr().out


def read_scores(data_dir: Path) -> dict[str, str]:
    with open(data_dir / "scores.csv", newline="", encoding="utf-8") as fh:
        return {row["filename"]: row["score"] for row in csv.DictReader(fh)}


def test_every_kind_of_rating_is_read(shoot):
    found = {p.name: read_rating(p) for p in sorted(shoot.glob("*.jpg"))}
    assert found["lightroom.jpg"].stars == 4 and found["lightroom.jpg"].label == "Red"
    assert found["lightroom.jpg"].source == "XMP sidecar lightroom.xmp"
    assert found["darktable.jpg"].stars == 2 and found["darktable.jpg"].source == "XMP sidecar darktable.jpg.xmp"
    assert (found["embedded.jpg"].stars, found["embedded.jpg"].source) == (5, "XMP embedded in the photo")
    assert (found["exif.jpg"].stars, found["exif.jpg"].source) == (3, "EXIF rating")
    assert found["rejected.jpg"].rejected and found["rejected.jpg"].stars is None
    assert found["unrated.jpg"] is None and found["85_named.jpg"] is None
    assert found["both.jpg"].stars == 1


def test_import_takes_ratings_first_and_never_touches_the_originals(workbench_env, shoot, capsys):
    before = {p.name: sha(p) for p in shoot.iterdir()}
    code, out = run_main(capsys, "import", shoot, "--json")
    assert code == 0
    document = json.loads(out)
    assert document["imported"] == 8
    assert (document["labelled"], document["from_ratings"], document["unlabelled"]) == (7, 6, 1)
    scores = read_scores(Path(workbench_env["WORKBENCH_DATA_DIR"]))
    # default mapping: the middle of each fifth of 0-100; rejected -> the minimum; the name is the fallback
    assert scores == {"lightroom.jpg": "70", "darktable.jpg": "30", "embedded.jpg": "90", "exif.jpg": "50",
                      "rejected.jpg": "0", "85_named.jpg": "85", "both.jpg": "10"}
    assert {p.name: sha(p) for p in shoot.iterdir()} == before


def test_ratings_source_choices_and_mapping(workbench_env, shoot, capsys):
    code, out = run_main(capsys, "import", shoot, "--ratings", "filename", "--json")
    assert (json.loads(out)["labelled"], json.loads(out)["from_ratings"]) == (1, 0)
    data = Path(workbench_env["WORKBENCH_DATA_DIR"])
    shutil.rmtree(data)
    code, out = run_main(capsys, "import", shoot, "--ratings", "xmp", "--json")
    assert (json.loads(out)["labelled"], json.loads(out)["from_ratings"]) == (6, 6)
    assert "85_named.jpg" not in read_scores(data)
    mapping = StarMapping.build(1, 10, "2,4,6,8,10", rejected="skip")
    assert mapping.score(read_rating(shoot / "lightroom.jpg")) == (8, "4★ (Red label, XMP sidecar lightroom.xmp)")
    # digiKam's pick label "rejected" rejects a photo whatever its stars
    exiftool("-overwrite_original", "-XMP-digiKam:PickLabel=1", "-XMP-xmp:Rating=3", shoot / "darktable.jpg.xmp")
    assert read_rating(shoot / "darktable.jpg").rejected
    assert mapping.score(read_rating(shoot / "rejected.jpg")) == (None, "skip")
    with pytest.raises(BadInput, match="five scores"):
        StarMapping.build(0, 100, "10,20,30")


def test_a_zip_and_uploads_bring_their_sidecars(tmp_path, shoot):
    import zipfile

    from workbench.dataset import scan_source

    archive = tmp_path / "shoot.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("lightroom.jpg", "lightroom.xmp", "darktable.jpg", "darktable.jpg.xmp"):
            zf.write(shoot / name, f"trip/{name}")
    preview = scan_source(archive)
    try:
        assert {i.name: (i.score, i.from_rating) for i in preview.items} == {
            "lightroom.jpg": (70, True), "darktable.jpg": (30, True)}
        assert not preview.skipped  # the sidecars are read, not reported as "not an image"
    finally:
        preview.cleanup()
    uploads = [("lightroom.jpg", shoot / "lightroom.jpg"), ("lightroom.xmp", shoot / "lightroom.xmp")]
    assert scan_source(uploads).items[0].score == 70


def test_written_sidecars_keep_foreign_tags_and_read_back_in_exiftool_and_exiv2(shoot):
    photo, sidecar = shoot / "lightroom.jpg", shoot / "lightroom.xmp"
    image_before = sha(photo)
    assert write_rating(photo, 2, 37.25) == [sidecar]
    tags = exiftool_json(sidecar)
    assert tags["XMP-xmp:Rating"] == 2 and tags["XMP-aesthetic:Score"] == 37.25
    assert tags["XMP-xmp:Label"] == "Red" and tags["XMP-dc:Subject"] == "beach"  # foreign tags survive
    read = exiv2_xmp(sidecar)
    assert read["Xmp.xmp.Rating"] == "2" and read[SCORE_KEY] == "37.25" and read["Xmp.dc.subject"] == "beach"
    assert sha(photo) == image_before
    # a photo without a sidecar gets a new one in the configured style, which both readers accept
    (new_stem,) = write_rating(shoot / "85_named.jpg", 5, 85)
    (new_name,) = write_rating(shoot / "exif.jpg", 3, 50, new_sidecar="name")
    assert (new_stem.name, new_name.name) == ("85_named.xmp", "exif.jpg.xmp")
    assert exiftool_json(new_name)["XMP-xmp:Rating"] == 3 and exiv2_xmp(new_stem)["Xmp.xmp.Rating"] == "5"
    # and the workbench reads back what it wrote
    assert read_rating(shoot / "85_named.jpg").stars == 5
    # embedding is explicit, and then exiftool sees it in the JPEG
    write_rating(shoot / "unrated.jpg", 4, 66, embed=True)
    assert exiftool_json(shoot / "unrated.jpg")["XMP-xmp:Rating"] == 4


def test_stars_by_thresholds_or_percentile():
    assert stars_for_scores([0, 19.9, 20, 55, 99, 100], "thresholds", 0, 100) == [1, 1, 2, 3, 5, 5]
    assert stars_for_scores([5, 1, 3, 2, 4, 9, 8, 7, 6, 10], "percentile", 0, 100) == [
        3, 1, 2, 1, 2, 5, 4, 4, 3, 5]
    with pytest.raises(BadInput, match="--stars"):
        stars_for_scores([1], "median", 0, 100)


def test_write_star_ratings_reports_a_folder_it_cannot_write(shoot, tmp_path):
    missing = tmp_path / "gone" / "x.jpg"
    result = write_star_ratings([(shoot / "exif.jpg", 80), (missing, 20)], "thresholds", 0, 100)
    assert result.stars == {shoot / "exif.jpg": 5}
    assert [p for p, _ in result.failed] == [missing]


def test_predict_write_xmp(workbench_env, photos, tmp_path, capsys):
    from training_fixtures import make_brightness_set

    from workbench.config import load_settings
    from workbench.events import drain
    from workbench.training import train

    data = make_brightness_set(photos, Path(workbench_env["WORKBENCH_DATA_DIR"]), n=24)
    run = drain(train("ridge", load_settings(data_dir=data)))
    folder = tmp_path / "to score"
    folder.mkdir()
    for name, pixels in zip(("a.jpg", "b.jpg", "c.jpg"), photos.values()):
        Image.fromarray(pixels).save(folder / name)
    exiftool("-o", folder / "a.xmp", "-XMP-dc:Subject=kept", folder / "a.jpg")
    code, out = run_main(capsys, "predict", run.run_id, folder, "--write-xmp", "--stars", "percentile", "--json")
    assert code == 0
    document = json.loads(out)
    assert sorted(Path(p).name for p in document["xmp"]["written"]) == ["a.xmp", "b.xmp", "c.xmp"]
    for row in document["results"]:
        sidecar = Path(row["path"]).with_suffix(".xmp")
        tags = exiftool_json(sidecar)
        assert tags["XMP-aesthetic:Score"] == pytest.approx(row["score"], rel=1e-5)
        assert tags["XMP-xmp:Rating"] == document["xmp"]["stars"][row["path"]]
    assert exiftool_json(folder / "a.xmp")["XMP-dc:Subject"] == "kept"
    assert "XMP-xmp:Rating" not in exiftool_json(folder / "b.jpg")  # the photos themselves are untouched
    code, out = run_main(capsys, "predict", run.run_id, folder / "b.jpg", "--write-xmp", "--embed-xmp", "--json")
    assert code == 0 and exiftool_json(folder / "b.jpg")["XMP-xmp:Rating"] == json.loads(out)["xmp"]["stars"][
        str(folder / "b.jpg")]


def test_embedded_ratings_in_heic_and_tiff(tmp_path, photos):
    import pillow_heif

    pillow_heif.register_heif_opener()
    pixels = next(iter(photos.values()))
    Image.fromarray(pixels).save(tmp_path / "phone.heic", quality=80)
    Image.fromarray(pixels).save(tmp_path / "scan.tif")
    exiftool("-overwrite_original", "-XMP-xmp:Rating=4", tmp_path / "phone.heic")
    exiftool("-overwrite_original", "-XMP-xmp:Rating=-1", tmp_path / "scan.tif")
    assert read_rating(tmp_path / "phone.heic").stars == 4
    assert read_rating(tmp_path / "scan.tif").rejected
