"""`zoo data NAME DIR`: real data sets from installed packages, written as folders finetune reads."""
from __future__ import annotations

import csv
import json

from PIL import Image

from helpers import run_zoo
from zoo.data import read_data


def test_lfw_faces_become_an_image_folder_of_200_real_faces_and_non_faces(tmp_path):
    result = run_zoo("data", "lfw-faces", str(tmp_path / "faces"), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["counts"] == {"face": 100, "non-face": 100}
    with Image.open(tmp_path / "faces" / "face" / "0000.png") as image:
        assert image.size == (25, 25) and image.mode == "L"
    data = read_data(tmp_path / "faces")
    assert data.classes == ["face", "non-face"] and len(data.val) == 40


def test_digits_become_ten_class_folders(tmp_path):
    result = run_zoo("data", "digits", str(tmp_path / "digits"))
    assert result.returncode == 0 and result.stdout == ""
    assert "wrote digits" in result.stderr
    assert sorted(p.name for p in (tmp_path / "digits").iterdir()) == [str(d) for d in range(10)]
    assert sum(1 for _ in (tmp_path / "digits").rglob("*.png")) == 1797


def test_a_non_empty_target_is_refused_and_left_untouched(tmp_path):
    (tmp_path / "keep.txt").write_text("mine")
    result = run_zoo("data", "digits", str(tmp_path))
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: '{tmp_path}' already exists and is not empty (choose a new folder)"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_play_lines_are_spoken_lines_labelled_by_play(tmp_path):
    from zoo.data.packaged import write_dataset

    counts = write_dataset("play-lines", tmp_path / "lines", plays=["macbeth", "the-tempest"])
    assert set(counts) == {"macbeth", "the-tempest"} and min(counts.values()) > 200
    with open(tmp_path / "lines" / "play_lines.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {"text": "Fair is foul, and foul is fair:", "play": "macbeth"} in rows
    assert not any(row["text"].startswith(("**", "_")) or len(row["text"]) < 20 for row in rows)


def test_plays_hold_out_the_named_play(tmp_path):
    result = run_zoo("data", "plays", str(tmp_path / "plays"), "--plays", "hamlet,othello", "--val", "macbeth")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "plays" / "train").iterdir()) == ["hamlet.md", "othello.md"]
    assert [p.name for p in (tmp_path / "plays" / "val").iterdir()] == ["macbeth.md"]
    data = read_data(tmp_path / "plays")
    assert data.format == "corpus" and len(data.train) == 2 and "Fair is foul" in data.val[0][0]


def test_an_unknown_play_lists_the_known_ones(tmp_path):
    result = run_zoo("data", "plays", str(tmp_path / "p"), "--plays", "hamlett")
    assert result.returncode == 1 and "Error: unknown play 'hamlett' (use one of:" in result.stderr
    assert not (tmp_path / "p").exists()
