"""Edges that used to end in `internal error`: permissions, a read-only ZOO_HOME, a full disk, symlinks
leaving a data folder. Each is one line naming the problem and the remedy.

Tests run as root here, and root reads and writes through `chmod 000`; the permission tests
therefore run their command as the unprivileged user `nobody` (setpriv), in folders it may enter.
"""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from zoo.data.folders import OUTSIDE
from zoo.data.formats import ReadOptions, read_data
from zoo.errors import StorageError, storage_error

from helpers import run_zoo

NOBODY = 65534
ZOO = str(Path(sys.executable).parent / "zoo")


@pytest.fixture
def shared(tmp_path_factory):
    """A folder outside pytest's private (0700) temporary tree, that `nobody` may enter but not write."""
    folder = Path(tempfile.mkdtemp(prefix="zoo-edges-", dir="/tmp"))
    folder.chmod(0o755)
    writable = folder / "home"
    writable.mkdir()
    writable.chmod(0o777)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def unprivileged(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess:
    """Run `args` as a user that file permissions apply to (root ignores chmod 000)."""
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv: cannot drop privileges to test permissions")
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
    base = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "HF_HOME": str(home / "hf"),
        "HF_HUB_OFFLINE": "1",
        "ZOO_HOME": str(home / "zoo"),
        "ZOO_LOAD_PLUGINS": "",
        **({"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else {}),
    }
    return subprocess.run([*prefix, *args], capture_output=True, text=True, env={**base, **env}, cwd=str(home))


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "internal error" not in lines[0], result.stderr
    return lines[0]


@pytest.mark.parametrize("layout", ["missing-in-read-only-folder", "read-only-records", "read-only-home"])
def test_read_only_zoo_home_is_named_with_the_remedy(shared, layout):
    home = shared / "home"
    zoo_home = {"missing-in-read-only-folder": shared / "zoo", "read-only-records": home / "zoo", "read-only-home": home / "ro"}[layout]
    if layout == "read-only-records":
        (zoo_home / "records").mkdir(parents=True)  # root's, 0755: nobody cannot write in it
        zoo_home.chmod(0o777)
    if layout == "read-only-home":
        zoo_home.mkdir()
    line = one_error_line(unprivileged([ZOO, "pull", "mlp-digits"], home, ZOO_HOME=str(zoo_home)))
    assert line.startswith(f"Error: ZOO_HOME ({zoo_home}) is not writable: permission denied: {zoo_home}"), line
    assert line.endswith("(point ZOO_HOME at a folder you can write, or fix its permissions (chown/chmod))")


def text_folder(root: Path, classes: dict[str, int]) -> Path:
    for name, count in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(count):
            (root / name / f"{i}.txt").write_text(f"{name} example number {i}\n")
    return root


def test_unreadable_sub_folder_of_a_data_folder_is_a_permission_problem(shared):
    data = text_folder(shared / "data", {"pos": 4, "neg": 4})
    (data / "neg" / "more").mkdir()
    (data / "neg" / "more" / "x.txt").write_text("hidden away\n")
    (data / "neg" / "more").chmod(0o000)
    script = (
        "from zoo.data.formats import read_data\n"
        "from zoo.errors import ZooError\n"
        f"try:\n    read_data({str(data)!r})\nexcept ZooError as exc:\n    print(type(exc).__name__, exc)\n"
    )
    result = unprivileged([sys.executable, "-c", script], shared / "home")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        f"DataError cannot read the folder {str(data / 'neg' / 'more')!r}: permission denied "
        "(fix its permissions (chmod/chown), or move it out of the data folder)"
    )


def test_unreadable_class_folder_is_named_by_the_cli(shared):
    data = text_folder(shared / "data", {"pos": 4, "neg": 4})
    (data / "neg").chmod(0o000)
    result = unprivileged([ZOO, "finetune", "lstm-text", "--data", str(data), "-o", str(shared / "home" / "out")], shared / "home")
    line = one_error_line(result)
    assert line == (
        f"Error: cannot read the folder {str(data / 'neg')!r}: permission denied "
        "(fix its permissions (chmod/chown), or move it out of the data folder)"
    )


def test_unreadable_data_file_is_named_as_a_permission_problem(shared):
    data = text_folder(shared / "data", {"pos": 4, "neg": 4})
    (data / "neg" / "0.txt").chmod(0o000)
    result = unprivileged([ZOO, "finetune", "lstm-text", "--data", str(data), "-o", str(shared / "home" / "out")], shared / "home")
    assert one_error_line(result) == (
        f"Error: permission denied: {data / 'neg' / '0.txt'} "
        "(fix its permissions (chmod/chown), or use a path you can read and write)"
    )


def test_folder_symlinks_leaving_the_data_folder_are_counted_not_followed(tmp_path):
    outside = text_folder(tmp_path / "elsewhere", {"stolen": 3})
    data = text_folder(tmp_path / "data", {"pos": 4, "neg": 4})
    (data / "root").symlink_to("/")  # a class folder that is the whole file system
    (data / "pos" / "link").symlink_to(outside / "stolen")  # a sub-folder leaving the data folder
    (data / "neg" / "inside").symlink_to(data / "pos")  # inside the data folder: followed
    (data / "neg" / "loop").symlink_to(data / "neg")  # a loop: walked once
    result = read_data(data, options=ReadOptions(val_split=0.25))
    assert result.classes == ["neg", "pos"]
    assert sorted(result.skipped[OUTSIDE]) == [str(data / p) for p in ("neg/inside/link", "pos/link", "root")]
    texts = [text for text, _ in result.train + result.val]
    assert not any("stolen" in text for text in texts)
    assert len(texts) == 12  # 4 pos + 4 neg + the 4 pos seen again through neg/inside


def test_storage_error_explains_a_real_full_device():
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    with pytest.raises(OSError) as info:
        with open("/dev/full", "wb", buffering=0) as f:
            f.write(b"x" * 10)
    error = storage_error(info.value, path="/dev/full", needed=10)
    assert isinstance(error, StorageError)
    assert str(error).startswith("no space left on the device for /dev/full (needs 10 bytes")
    assert str(error).endswith("(free some space there, or write elsewhere (another -o, ZOO_HOME or TMPDIR))")
    assert storage_error(OSError(errno.ENOENT, "No such file or directory", "x")) is None  # not one zoo explains


@pytest.fixture
def full_disk(tmp_path):
    """A tiny tmpfs, filled up: a real full disk. Skipped where mounting is not allowed."""
    mount = tmp_path / "full"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        (mount / "filler").write_bytes(b"\0" * 200_000)  # about 60 kB left: folders and small files still fit
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_safetensors_save_on_a_full_disk_names_path_and_bytes(full_disk):
    import torch

    from zoo.statedict import save_safetensors

    target = full_disk / "weights" / "model.safetensors"
    with pytest.raises(StorageError, match=rf"no space left on the device for {target} \(needs 1,048,576 bytes, \d[\d,]* free\)"):
        save_safetensors({"w": torch.zeros(1 << 18)}, target)
    assert [p.name for p in target.parent.iterdir()] == []  # no temporary file left behind


@pytest.mark.parametrize("fmt", ["onnx", "safetensors"])
def test_export_on_a_full_disk_is_one_line_without_static(full_disk, fmt):
    target = full_disk / ("m.onnx" if fmt == "onnx" else "m")
    result = run_zoo("export", "lenet5-digits", "--format", fmt, "-o", str(target))
    line = one_error_line(result)
    assert "no space left on the device" in line and "--static" not in line, line
