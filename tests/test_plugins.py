"""The plugin system: built-ins by import, entry points, isolation of broken plugins, duplicates."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import zoo
from zoo.errors import PluginError, UnknownModelError
from zoo.plugins import PluginWarning, get_plugin_manager
from zoo.registry import Registry

from helpers import ROOT, run_zoo


def write_distribution(site: Path, dist: str, module: str, source: str, entry_name: str | None = None) -> None:
    """Lay out an installed distribution (module + dist-info with a `zoo` entry point) as pip would."""
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(textwrap.dedent(source))
    info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[zoo]\n{entry_name or dist} = {module}\n")
    (info / "RECORD").write_text("")


GOOD_PLUGIN = """
    import zoo

    @zoo.hookimpl
    def register_architectures(register):
        register(zoo.ArchSpec(name="goodnet", family="mlp", build="zoo_mlp.model:mlp",
                              tasks=("tabular-classification",), input=zoo.InputSpec("features", (64,))))
"""


class TinyPlugin:
    """A test plugin registering one architecture and one weight."""

    @zoo.hookimpl
    def register_architectures(self, register):
        register(
            zoo.ArchSpec(
                name="testnet",
                family="mlp",
                build="zoo_mlp.model:mlp",
                tasks=("tabular-classification",),
                input=zoo.InputSpec("features", (64,)),
                defaults={"hidden": (8,)},
            )
        )

    @zoo.hookimpl
    def register_weights(self, register):
        register(
            zoo.WeightSpec(
                id="testnet.demo",
                arch="testnet",
                aliases=("testnet-demo",),
                default=True,
                sources=(zoo.Source("bundled", package="zoo_mlp", path="nowhere.safetensors"),),
            )
        )


@pytest.fixture
def pm_with_test_plugin(plugin_manager):
    plugin_manager.add(TinyPlugin(), "tiny")
    try:
        yield plugin_manager
    finally:
        if plugin_manager.get_plugin("tiny") is not None:
            plugin_manager.unregister(name="tiny")


def test_builtin_plugins_register_their_architectures(plugin_manager):
    registry = Registry.from_plugin_manager(plugin_manager)
    assert {"perceptron", "perceptron-logistic", "mlp"} <= set(registry.archs)
    assert registry.archs["mlp"].plugin == "zoo_mlp"
    assert plugin_manager.records["zoo_mlp"].registered["architectures"] == ["mlp"]
    assert plugin_manager.records["zoo_mlp"].registered["weights"] == ["mlp.digits"]  # the weights it bundles
    assert plugin_manager.records["zoo_mlp"].hooks == ["register_architectures", "register_weights"]


def test_a_test_plugin_registers_architecture_weights_and_alias(pm_with_test_plugin):
    registry = Registry.from_plugin_manager(pm_with_test_plugin)
    assert registry.archs["testnet"].plugin == "tiny"
    assert registry.resolve("testnet-demo").weights.id == "testnet.demo"
    assert registry.resolve("testnet").weights.id == "testnet.demo"  # the default tag
    assert "testnet.demo" in registry.list_models("test*", pretrained=True)
    from zoo.loading import load

    assert load("testnet", pretrained=False, registry=registry).blocks[0][0].out_features == 8


def test_import_of_zoo_loads_no_plugin_and_no_torch():
    code = "import sys, zoo; print('torch' in sys.modules, 'zoo_mlp' in sys.modules, 'pluggy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False", "True"]


def test_duplicate_name_names_both_plugins(plugin_manager):
    class Copycat:
        @zoo.hookimpl
        def register_architectures(self, register):
            register(
                zoo.ArchSpec(name="mlp", family="mlp", build="zoo_mlp.model:mlp", tasks=("x",),
                             input=zoo.InputSpec("features", (64,)))
            )

    plugin_manager.add(Copycat(), "copycat")
    with pytest.warns(PluginWarning, match=r"'mlp' is registered by both 'zoo_mlp' and 'copycat'"):
        registry = Registry.from_plugin_manager(plugin_manager)
    assert registry.archs["mlp"].plugin == "zoo_mlp"
    assert "registered by both" in plugin_manager.records["copycat"].error


def test_duplicate_name_is_fatal_under_strict(plugin_manager, monkeypatch):
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")

    class Copycat:
        @zoo.hookimpl
        def register_architectures(self, register):
            register(
                zoo.ArchSpec(name="perceptron", family="x", build="m:f", tasks=("x",), input=zoo.InputSpec("features"))
            )

    plugin_manager.add(Copycat(), "copycat")
    with pytest.raises(PluginError, match="both 'zoo_perceptron' and 'copycat'"):
        Registry.from_plugin_manager(plugin_manager)


def test_hook_that_raises_is_skipped_and_its_registrations_dropped(plugin_manager):
    class HalfBroken:
        @zoo.hookimpl
        def register_architectures(self, register):
            register(
                zoo.ArchSpec(name="halfnet", family="mlp", build="zoo_mlp.model:mlp", tasks=("x",),
                             input=zoo.InputSpec("features", (64,)))
            )
            raise RuntimeError("database of weights is on fire")

    plugin_manager.add(HalfBroken(), "halfbroken")
    with pytest.warns(PluginWarning, match="'halfbroken' skipped: register_architectures raised RuntimeError"):
        registry = Registry.from_plugin_manager(plugin_manager)
    assert "halfnet" not in registry.archs and "mlp" in registry.archs
    with pytest.raises(UnknownModelError):
        registry.resolve("halfnet")


def test_invalid_spec_is_refused_with_its_plugin_named(plugin_manager):
    class Sloppy:
        @zoo.hookimpl
        def register_architectures(self, register):
            register({"name": "dictnet"})

    plugin_manager.add(Sloppy(), "sloppy")
    with pytest.warns(PluginWarning, match="'sloppy' skipped: register_architectures: expected a ArchSpec, got dict"):
        Registry.from_plugin_manager(plugin_manager)
    assert plugin_manager.records["sloppy"].error.startswith("register_architectures: expected")


def test_invalid_spec_fields_are_errors_at_construction():
    with pytest.raises(zoo.RegistryError, match="build must be 'module:function'"):
        zoo.ArchSpec(name="x", family="mlp", build="nocolon", tasks=("t",), input=zoo.InputSpec("features"))
    with pytest.raises(zoo.RegistryError, match="input kind 'audio'"):
        zoo.InputSpec("audio")
    with pytest.raises(zoo.RegistryError, match="id must be 'mlp.<tag>'"):
        zoo.WeightSpec(id="other.tag", arch="mlp", sources=(zoo.Source("bundled", package="p", path="f"),))
    with pytest.raises(zoo.RegistryError, match="a 'hf' source needs 'filename'"):
        zoo.Source("hf", repo="org/repo")


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "zoo-good", "zoo_good", GOOD_PLUGIN, entry_name="good")
    write_distribution(site, "zoo-broken-import", "zoo_broken_import", "import a_module_that_does_not_exist\n")
    write_distribution(
        site,
        "zoo-raising",
        "zoo_raising",
        """
        import zoo

        @zoo.hookimpl
        def register_architectures(register):
            raise ValueError("cannot reach my catalogue")
        """,
    )
    return site


def test_broken_plugins_leave_zoo_list_working_with_one_warning_each(site):
    result = run_zoo("list", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert "goodnet" in result.stdout and "mlp" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 2, result.stderr
    assert any("'zoo-broken-import' skipped: import of 'zoo_broken_import' failed: ModuleNotFoundError" in w for w in warnings)
    assert any("'zoo-raising' skipped: register_architectures raised ValueError: cannot reach my catalogue" in w for w in warnings)


def test_zoo_plugins_shows_each_plugins_error(site):
    import json

    result = run_zoo("plugins", "--json", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    records = {r["name"]: r for r in json.loads(result.stdout)}
    assert records["good"]["error"] is None and records["good"]["version"] == "1.0"
    assert records["good"]["registered"] == {"architectures": ["goodnet"]}
    assert "ModuleNotFoundError" in records["zoo-broken-import"]["error"]
    assert "cannot reach my catalogue" in records["zoo-raising"]["error"]


def test_strict_plugins_makes_a_broken_plugin_fatal(site):
    result = run_zoo("list", env={"PYTHONPATH": str(site), "ZOO_STRICT_PLUGINS": "1"})
    assert result.returncode == 1
    assert result.stderr.startswith("Error: plugin 'zoo-broken-import' failed: import of 'zoo_broken_import' failed")
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(("value", "expected"), [("", set()), ("good", {"good"}), ("zoo-raising,good", {"good", "zoo-raising"})])
def test_zoo_load_plugins_chooses_third_party_plugins(site, value, expected):
    import json

    result = run_zoo("plugins", "--json", env={"PYTHONPATH": str(site), "ZOO_LOAD_PLUGINS": value})
    names = {r["name"] for r in json.loads(result.stdout) if not r["builtin"]}
    assert names == expected


def test_example_plugin_package_installs_and_appears(tmp_path):
    """The third-party example package, built and installed by pip, shows up in list, plugins and commands."""
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         str(ROOT / "examples" / "zoo-plugin-example")],
        check=True, capture_output=True,
    )
    env = {"PYTHONPATH": str(target)}
    listed = run_zoo("list", "--family", "cnn", "--json", env=env)
    assert listed.returncode == 0, listed.stderr
    import json

    tiny = next(r for r in json.loads(listed.stdout) if r["name"] == "tinycnn")
    assert tiny["plugin"] == "example" and tiny["num_params"] == 1418
    plugins = {r["name"]: r for r in json.loads(run_zoo("plugins", "--json", env=env).stdout)}
    assert plugins["example"]["version"] == "0.2.0"
    assert plugins["example"]["registered"] == {"architectures": ["tinycnn"], "commands": ["tinycnn-demo"]}
    demo = run_zoo("tinycnn-demo", env=env)
    assert demo.returncode == 0 and demo.stdout.strip() == "(1, 10)"


def test_fresh_plugin_managers_are_independent():
    first, second = get_plugin_manager(entry_points=False), get_plugin_manager(entry_points=False)
    first.add(TinyPlugin(), "tiny")
    assert "testnet" in Registry.from_plugin_manager(first).archs
    assert "testnet" not in Registry.from_plugin_manager(second).archs


def test_broken_builtin_module_is_reported_not_fatal():
    with pytest.warns(PluginWarning, match="'zoo_no_such_builtin' skipped: import failed"):
        pm = get_plugin_manager(("zoo_mlp", "zoo_no_such_builtin"), entry_points=False)
    assert "mlp" in Registry.from_plugin_manager(pm).archs
    assert pm.records["zoo_no_such_builtin"].builtin


def test_strict_builtin_failure_raises(monkeypatch):
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "1")
    with pytest.raises(PluginError, match="'zoo_no_such_builtin' failed"):
        get_plugin_manager(("zoo_no_such_builtin",), entry_points=False)


def test_a_builder_that_cannot_be_imported_is_a_plugin_error_naming_it(plugin_manager):
    class Dangling:
        @zoo.hookimpl
        def register_architectures(self, register):
            register(
                zoo.ArchSpec(name="dangling", family="mlp", build="zoo_gone.models:dangling", tasks=("x",),
                             input=zoo.InputSpec("features", (4,)))
            )

    plugin_manager.add(Dangling(), "dangling-plugin")
    registry = Registry.from_plugin_manager(plugin_manager, files=[])
    assert "dangling" in registry.list_models()  # listing never imports builders
    from zoo.loading import load

    with pytest.raises(PluginError, match=r"architecture 'dangling' \(dangling-plugin\): builder: 'zoo_gone.models:dangling' cannot be imported: No module named 'zoo_gone'"):
        load("dangling", registry=registry)
