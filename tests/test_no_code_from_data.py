"""A guard over zoo/ and plugins/: code may import a name, unpickle, or load TorchScript / torch.export
programs only in the few vetted places below (DESIGN rule 9, docs/security.md). A new call site fails
here until someone checks that what it imports or loads can never come from data, and lists it."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import ROOT

# (file, function) -> why the name it imports or the file it loads cannot come from data.
IMPORTS = {
    ("zoo/plugins.py", "import_reference"): "the one helper for a plugin's registered 'module:function'",
    ("zoo/plugins.py", "get_plugin_manager"): "the built-in plugin modules, a constant list",
    ("zoo/data/packaged.py", "_need"): "data set packages named in the code (scikit-learn, scikit-image)",
    ("zoo/build.py", "builder"): "ArchSpec.build, registered by a plugin",
    ("zoo/modeldir.py", "_library_keys"): "ArchSpec.library_config, registered by a plugin (used on save, never read from a directory)",
    ("zoo/exporting.py", "function"): "Exporter.export/load, registered by a plugin",
    ("zoo/data/formats.py", "function"): "DataFormat.detect/load, registered by a plugin",
    ("zoo/tasks/__init__.py", "function"): "a TaskSpec's callables, registered by a plugin (data names a task by its name only)",
    ("zoo/data/image_files.py", "_own_transform"): "TransformSpec.build, looked up by a plain name a plugin registered",
    ("zoo/weights.py", "convert_checkpoint"): "a converter of a plugin's WeightSpec (registry files may not name one)",
    ("zoo/testing.py", "_registry_with"): "the plugin module a plugin author's own test names, in code",
}
# importlib.resources.files(package) imports the package: allowed where the package is a plugin's own.
RESOURCES = {
    ("zoo/data/tokenizers.py", "_read"): "VocabSpec.package, looked up by a plain name a plugin registered",
    ("zoo/specs.py", "label_names"): "WeightSpec labels 'package:path', from plugins only (registry files give lists)",
    ("plugins/zoo_timm/__init__.py", "catalog"): "the plugin's own package (__name__)",
}
LOADERS = {
    ("zoo/exporters/torch_formats.py", "load_torchscript"): "TorchScript: warns that it is code unless zoo just wrote it",
    ("zoo/exporters/torch_formats.py", "load_pt2"): "torch.export.load, after check_pt2 refused anything that unpickles or evaluates",
}
IMPORT_CALLS = {"import_module", "__import__", "import_reference"}
BUILTINS = {"exec", "eval", "compile", "__import__"}  # called bare; `model.eval()` is another thing
LOADER_CALLS = {"torch.jit.load", "jit.load", "torch.export.load", "export.load"}
PICKLE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve"}


def sources() -> list[Path]:
    return sorted(p for folder in ("zoo", "plugins") for p in (ROOT / folder).rglob("*.py"))


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def call_sites(path: Path) -> list[tuple[str, str, ast.Call]]:
    """(function name, called name, call) for every call in `path`; module level is ''."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []

    def visit(node: ast.AST, function: str) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else function
            if isinstance(child, ast.Call):
                found.append((function, dotted(child.func), child))
            visit(child, inner)

    visit(tree, "")
    return found


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_names_are_imported_only_where_they_come_from_plugins():
    unvetted = []
    for path in sources():
        bare_files = "from importlib.resources import files" in path.read_text(encoding="utf-8")
        for function, name, call in call_sites(path):
            site = (relative(path), function)
            imports = (name.rsplit(".", 1)[-1] in IMPORT_CALLS or name in BUILTINS) and site not in IMPORTS
            resources = (name.endswith("resources.files") or (bare_files and name == "files")) and site not in RESOURCES
            if imports or resources:
                unvetted.append(f"{site[0]}:{call.lineno} {function or '<module>'} calls {name}")
    assert not unvetted, "a new import of a name: check it cannot come from data, then list it here:\n" + "\n".join(unvetted)


def test_torch_load_always_passes_weights_only_true():
    unsafe = []
    for path in sources():
        for function, name, call in call_sites(path):
            if name == "torch.load":
                flag = next((k.value for k in call.keywords if k.arg == "weights_only"), None)
                if not (isinstance(flag, ast.Constant) and flag.value is True):
                    unsafe.append(f"{relative(path)}:{call.lineno} {function}: torch.load without weights_only=True")
    assert not unsafe, "\n".join(unsafe)


def test_nothing_unpickles_and_code_formats_load_only_in_vetted_places():
    found = []
    for path in sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            found += [f"{relative(path)}:{node.lineno} imports {n}" for n in names if n.split(".")[0] in PICKLE_MODULES]
        found += [
            f"{relative(path)}:{call.lineno} {function}: {name}"
            for function, name, call in call_sites(path)
            if name in LOADER_CALLS and (relative(path), function) not in LOADERS
        ]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("table", [IMPORTS, RESOURCES, LOADERS], ids=["imports", "resources", "loaders"])
def test_every_vetted_place_still_exists(table):
    """A stale entry would let a new function of the same name through unvetted."""
    for file, function in table:
        assert any(f == function for f, _, _ in call_sites(ROOT / file)) or f"def {function}(" in (ROOT / file).read_text(), (
            f"{file}: {function} is gone; drop it from the list"
        )
