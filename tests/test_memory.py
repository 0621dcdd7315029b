"""Memory is bounded by the batch, never by the input: hostile image sizes, many inputs, large CSV files.

Peak memory is measured on a real `zoo` subprocess (its own rusage, from os.wait4), against a baseline
run of the same command on a small input, so the bound holds whatever torch itself costs here.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from zoo.errors import DataError

LITE0 = "tf_efficientnet_lite0.in1k"
ZOO = str(Path(sys.executable).parent / "zoo")


def measured(*args: str, cwd: Path, timeout: float = 300) -> tuple[int, str, str, float, float]:
    """Run `args` in a subprocess: (exit code, stdout, stderr, peak RSS in MB, seconds)."""
    out, err = cwd / "stdout.txt", cwd / "stderr.txt"
    started = time.perf_counter()
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(args, stdout=stdout, stderr=stderr, cwd=cwd)
        while True:  # os.wait4 reaps the child itself, so its rusage is this child's alone
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - started > timeout:
                process.kill()
            time.sleep(0.05)
        process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - started
    return process.returncode, out.read_text(), err.read_text(), usage.ru_maxrss / 1024, seconds


def unprivileged(*args: str) -> list[str]:
    """`args` without root's power to read any file whatever its mode (tests run as root in CI)."""
    if os.geteuid() != 0:
        return list(args)
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search", *args]


def strip(path: Path, width: int, height: int) -> Path:
    Image.new("RGB", (width, height), (200, 30, 30)).save(path)
    return path


def class_folders(root: Path) -> Path:
    """Two classes of three 16×16 images each."""
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        for i in range(3):
            strip(root / name / f"{i}.png", 16, 16)
    return root


# Images: refused by their header's size, before a full-size allocation


@pytest.mark.parametrize("size", [(1, 60000), (60000, 1), (5, 3000)])
def test_a_thin_strip_is_refused_by_its_header_before_decoding(tmp_path, size):
    from zoo.images import open_image

    path = strip(tmp_path / "strip.png", *size)
    assert path.stat().st_size < 2000  # tiny on disk, and under PIL's decompression-bomb limit
    with pytest.raises(DataError) as caught:
        open_image(path)
    assert str(caught.value) == (
        f"{path} is {size[0]}×{size[1]} pixels, an aspect ratio over 100:1 that no model input needs "
        "(crop it to the part that matters first)"
    )


def test_an_image_over_the_pixel_limit_is_refused_before_decoding(tmp_path):
    from zoo.images import MAX_PIXELS, open_image

    path = tmp_path / "big.png"
    Image.new("1", (8000, 6000)).save(path)  # 48 megapixels in a few kilobytes, under PIL's own limit
    assert 8000 * 6000 > MAX_PIXELS
    with pytest.raises(DataError, match=r"big.png is 8000×6000 pixels \(48\.0 megapixels\), over the 40 megapixels"):
        open_image(path)


def test_a_large_jpeg_is_decoded_at_a_reduced_scale(tmp_path):
    from zoo.images import MAX_PIXELS, open_image

    path = tmp_path / "big.jpg"
    Image.new("RGB", (9000, 6000), (10, 120, 200)).save(path, quality=50)
    image = open_image(path)
    assert image.width * image.height <= MAX_PIXELS and image.width / image.height == pytest.approx(1.5, rel=0.01)
    assert image.getpixel((10, 10)) == pytest.approx((10, 120, 200), abs=3)


@pytest.mark.parametrize("size", [(1, 3000), (1, 60000)])
def test_predict_on_a_thin_strip_is_a_one_line_error_in_bounded_memory(tmp_path, size):
    strip(tmp_path / "ok.png", 64, 64)
    path = strip(tmp_path / "strip.png", *size)
    code, _, _, baseline, _ = measured(ZOO, "predict", LITE0, "ok.png", cwd=tmp_path)
    assert code == 0
    code, stdout, stderr, peak, _ = measured(ZOO, "predict", LITE0, "strip.png", cwd=tmp_path)
    assert (code, stdout) == (1, "")
    assert stderr.startswith(f"Error: strip.png is {size[0]}×{size[1]} pixels, an aspect ratio over 100:1")
    assert len(stderr.splitlines()) == 1
    assert peak < baseline + 100, f"{peak:.0f} MB against {baseline:.0f} MB for a 64×64 image"


def test_an_unreadable_image_is_named_as_a_permission_problem(tmp_path):
    path = strip(tmp_path / "locked.png", 16, 16)
    path.chmod(0)
    done = subprocess.run(unprivileged(ZOO, "predict", "mlp-digits", str(path)), capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr == (
        f"Error: {path} cannot be read: permission denied (make it readable, e.g. chmod u+r, or run as its owner)\n"
    )


def test_an_unreadable_training_image_is_skipped_as_a_permission_problem(tmp_path):
    class_folders(tmp_path / "data")
    (tmp_path / "data" / "a" / "0.png").chmod(0)
    code = (
        "import json, sys; from zoo.data.formats import read_data\n"
        "print(json.dumps(read_data(sys.argv[1]).skipped))"
    )
    done = subprocess.run(unprivileged(sys.executable, "-c", code, str(tmp_path / "data")), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"unreadable: permission denied": [str(tmp_path / "data" / "a" / "0.png")]}


def test_a_thin_strip_in_a_training_folder_is_skipped_and_counted(tmp_path):
    from zoo.data.formats import read_data

    class_folders(tmp_path)
    strip(tmp_path / "b" / "strip.png", 1, 60000)
    data = read_data(tmp_path)
    assert data.skipped == {"aspect ratio over 100:1": [str(tmp_path / "b" / "strip.png")]}
