"""A plugin cannot take the CLI down: name conflicts, SystemExit, command takeovers, slow imports, strictness."""
from __future__ import annotations

import json
import sys
import time

import pytest

import zoo
from zoo.errors import PluginError
from zoo.plugins import PluginWarning, load_entry_points, strict_plugins
from zoo.registry import Registry

from helpers import run_zoo
from test_plugins import write_distribution

ARCH_AND_WEIGHTS = """
    import zoo

    @zoo.hookimpl
    def register_architectures(register):
        register(zoo.ArchSpec(name="clashnet", family="mlp", build="zoo_mlp.model:mlp",
                              tasks=("tabular-classification",), input=zoo.InputSpec("features", (64,))))

    @zoo.hookimpl
    def register_weights(register):
        register(zoo.WeightSpec(id="clashnet.x", arch="clashnet", aliases=({alias!r},),
                                sources=(zoo.Source("bundled", package="zoo_mlp", path="none.safetensors"),)))
"""


def weights_plugin(name: str, alias: str, arch: str = "mlp"):
    """A plugin object registering weights `arch.<name>` with one alias."""

    class Plugin:
        @zoo.hookimpl
        def register_weights(self, register):
            register(
                zoo.WeightSpec(
                    id=f"{arch}.{name}",
                    arch=arch,
                    aliases=(alias,),
                    sources=(zoo.Source("bundled", package="zoo_mlp", path="none.safetensors"),),
                )
            )

    return Plugin()


@pytest.fixture
def curated(tmp_path, monkeypatch):
    """A registry file (ZOO_REGISTRY, read like registry.yaml) naming `mlp.curated`, alias `curated-mlp`."""
    path = tmp_path / "curated.yaml"
    path.write_text(
        "version: 1\nweights:\n  - id: mlp.curated\n    arch: mlp\n    aliases: [curated-mlp]\n"
        "    sources:\n      - {kind: hf, repo: someone/curated-mlp, filename: model.safetensors}\n"
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    return path


def test_plugin_alias_taken_by_registry_yaml_skips_only_the_plugins_entry(plugin_manager, curated):
    plugin_manager.add(weights_plugin("mine", "curated-mlp"), "clash")
    with pytest.warns(PluginWarning, match=r"plugin 'clash': weights 'mlp.mine': 'curated-mlp' is already .*registry.yaml"):
        registry = Registry.from_plugin_manager(plugin_manager)
    assert registry.resolve("curated-mlp").weights.id == "mlp.curated"
    assert "mlp.mine" not in registry.weights
    record = plugin_manager.records["clash"]
    assert record.error is None and "'curated-mlp'" in record.warnings[0]


def test_plugin_alias_taken_by_a_builtin_plugins_weights_skips_only_the_plugins_entry(plugin_manager):
    plugin_manager.add(weights_plugin("mine", "mlp-digits"), "clash")
    with pytest.warns(PluginWarning, match=r"plugin 'clash': weights 'mlp.mine': 'mlp-digits' is already an alias of the weights 'mlp.digits' \(zoo_mlp\)"):
        registry = Registry.from_plugin_manager(plugin_manager)
    assert registry.resolve("mlp-digits").weights.id == "mlp.digits"
    assert "mlp.mine" not in registry.weights
    record = plugin_manager.records["clash"]
    assert record.error is None and "'mlp-digits'" in record.warnings[0]


def test_a_registry_file_name_wins_over_a_builtin_plugins_weights(plugin_manager, tmp_path, monkeypatch):
    path = tmp_path / "mine.yaml"
    path.write_text(
        "version: 1\nweights:\n  - id: mlp.mine\n    arch: mlp\n    aliases: [mlp-digits]\n"
        "    sources:\n      - {kind: hf, repo: me/mlp, filename: model.safetensors}\n"
    )
    monkeypatch.setenv("ZOO_REGISTRY", str(path))
    with pytest.warns(PluginWarning, match=r"plugin 'zoo_mlp': weights 'mlp.digits': 'mlp-digits' is already .*registry.yaml"):
        registry = Registry.from_plugin_manager(plugin_manager)
    assert registry.resolve("mlp-digits").weights.id == "mlp.mine"
    assert registry.resolve("lenet5-digits").weights.id == "lenet5.digits"  # the rest of the built-ins stays


def test_alias_equal_to_an_architecture_name_never_hides_it(plugin_manager):
    plugin_manager.add(weights_plugin("mine", "perceptron"), "shadow")
    with pytest.warns(PluginWarning, match=r"plugin 'shadow': weights 'mlp.mine': 'perceptron' is already the architecture 'perceptron' \(zoo_perceptron\)"):
        registry = Registry.from_plugin_manager(plugin_manager)
    resolved = registry.resolve("perceptron")
    assert resolved.arch.name == "perceptron" and resolved.weights is None


def squatter(name: str):
    """A plugin registering an architecture called `name`."""

    class Squatter:
        @zoo.hookimpl
        def register_architectures(self, register):
            register(zoo.ArchSpec(name=name, family="mlp", build="zoo_mlp.model:mlp", tasks=("x",),
                                  input=zoo.InputSpec("features", (4,))))

    return Squatter()


def test_plugin_architecture_named_like_a_registry_alias_is_skipped(plugin_manager, curated):
    plugin_manager.add(squatter("curated-mlp"), "squatter")
    with pytest.warns(PluginWarning, match=r"plugin 'squatter': architecture 'curated-mlp': 'curated-mlp' is already .*registry.yaml"):
        registry = Registry.from_plugin_manager(plugin_manager)
    assert "curated-mlp" not in registry.archs
    assert registry.resolve("curated-mlp").weights.id == "mlp.curated"


def test_plugin_architecture_named_like_a_builtin_plugins_alias_is_skipped(plugin_manager):
    plugin_manager.add(squatter("lstm-text"), "squatter")
    with pytest.warns(PluginWarning, match=r"plugin 'squatter': architecture 'lstm-text': 'lstm-text' is already an alias of the weights 'textgenrnn.reddit' \(zoo_rnn\)"):
        registry = Registry.from_plugin_manager(plugin_manager)
    assert "lstm-text" not in registry.archs
    assert registry.resolve("lstm-text").weights.id == "textgenrnn.reddit"


def test_alias_conflict_between_two_plugins_skips_the_second(plugin_manager):
    plugin_manager.add(weights_plugin("first", "shared-name"), "first")
    plugin_manager.add(weights_plugin("second", "shared-name"), "second")
    with pytest.warns(PluginWarning, match=r"plugin 'second': weights 'mlp.second': 'shared-name' is already .*\(first\)"):
        registry = Registry.from_plugin_manager(plugin_manager)
    assert registry.resolve("shared-name").weights.id == "mlp.first"


def test_name_conflict_is_fatal_under_strict(plugin_manager, monkeypatch):
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", "yes")
    plugin_manager.add(weights_plugin("mine", "mlp-digits"), "clash")
    with pytest.raises(PluginError, match="plugin 'clash' failed: weights 'mlp.mine': 'mlp-digits' is already"):
        Registry.from_plugin_manager(plugin_manager)


def test_registry_alias_conflict_leaves_list_info_and_plugins_working(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "zoo-clash", "zoo_clash", ARCH_AND_WEIGHTS.replace("{alias!r}", "'mlp-digits'"))
    env = {"PYTHONPATH": str(site)}
    for args in (("list",), ("info", "mlp-digits"), ("plugins",)):
        result = run_zoo(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
        assert len(warnings) == 1 and "'mlp-digits' is already" in warnings[0], (args, result.stderr)
    info = run_zoo("info", "mlp-digits", "--json", env=env)
    assert json.loads(info.stdout)["name"] == "mlp.digits"


class Exiting:
    @zoo.hookimpl
    def register_architectures(self, register):
        sys.exit(3)


class Interrupted(BaseException):
    pass


class RaisingBase:
    @zoo.hookimpl
    def register_architectures(self, register):
        raise Interrupted("not an Exception")


@pytest.mark.parametrize(("plugin", "raised"), [(Exiting(), "SystemExit: 3"), (RaisingBase(), "Interrupted: not an Exception")])
def test_system_exit_and_base_exceptions_in_a_hook_are_contained(plugin_manager, plugin, raised):
    plugin_manager.add(plugin, "leaver")
    with pytest.warns(PluginWarning, match=f"'leaver' skipped: register_architectures raised {raised}"):
        registry = Registry.from_plugin_manager(plugin_manager)
    assert "mlp" in registry.archs


def test_keyboard_interrupt_in_a_hook_still_stops(plugin_manager):
    class Stopping:
        @zoo.hookimpl
        def register_architectures(self, register):
            raise KeyboardInterrupt

    plugin_manager.add(Stopping(), "stopping")
    with pytest.raises(KeyboardInterrupt):
        Registry.from_plugin_manager(plugin_manager)


def test_system_exit_in_a_hook_or_at_import_leaves_zoo_list_working(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "zoo-exit-import", "zoo_exit_import", "raise SystemExit(4)\n")
    write_distribution(
        site,
        "zoo-exit-hook",
        "zoo_exit_hook",
        """
        import sys
        import zoo

        @zoo.hookimpl
        def register_architectures(register):
            sys.exit(3)
        """,
    )
    result = run_zoo("list", env={"PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert "mlp-digits" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning:")]
    assert len(warnings) == 2, result.stderr
    assert any("'zoo-exit-import' skipped: import of 'zoo_exit_import' failed: SystemExit: 4" in w for w in warnings)
    assert any("'zoo-exit-hook' skipped: register_architectures raised SystemExit: 3" in w for w in warnings)


COMMAND_TAKEOVER = """
    import click
    import zoo

    @click.command("list")
    def fake_list():
        click.echo("hijacked")

    @click.command("takeover-extra")
    def extra():
        click.echo("extra")

    @zoo.hookimpl
    def register_commands(cli):
        cli.add_command(fake_list)
        cli.add_command(extra)
"""


def test_a_plugin_command_cannot_replace_a_built_in_command(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "zoo-takeover", "zoo_takeover", COMMAND_TAKEOVER, entry_name="takeover")
    env = {"PYTHONPATH": str(site)}
    listed = run_zoo("list", "mlp", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "hijacked" not in listed.stdout and listed.stdout.splitlines()[1].startswith("mlp ")
    assert listed.stderr.strip() == (
        "Warning: plugin 'takeover': command 'list' is already the built-in command 'zoo list'; skipped"
    )
    plugins = {r["name"]: r for r in json.loads(run_zoo("plugins", "--json", env=env).stdout)}
    assert plugins["takeover"]["registered"] == {"commands": ["takeover-extra"]}
    assert plugins["takeover"]["warnings"] == ["command 'list' is already the built-in command 'zoo list'; skipped"]
    table = run_zoo("plugins", env=env).stdout
    assert "warning: command 'list' is already the built-in command" in table
    assert run_zoo("takeover-extra", env=env).stdout == "extra\n"


def test_a_slow_plugin_import_is_reported_while_it_runs(tmp_path, monkeypatch):
    import zoo.plugins

    site = tmp_path / "site"
    write_distribution(site, "zoo-sleepy", "zoo_sleepy_isolation", "import time\ntime.sleep(1.0)\n", entry_name="sleepy")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "sleepy")
    monkeypatch.setattr(zoo.plugins, "SLOW_IMPORT_SECONDS", 0.2)
    pm = zoo.plugins.get_plugin_manager((), entry_points=False)
    started = time.monotonic()
    with pytest.warns(PluginWarning) as caught:
        load_entry_points(pm)
    assert time.monotonic() - started < 5
    messages = [str(w.message) for w in caught]
    assert messages == [
        "plugin 'sleepy' is still importing after 0.2 s (zoo_sleepy_isolation); "
        "if it hangs, leave it out with ZOO_LOAD_PLUGINS (e.g. ZOO_LOAD_PLUGINS= for built-ins only)"
    ]
    assert pm.get_plugin("sleepy") is not None  # reported, not killed


def test_a_fast_plugin_import_says_nothing(tmp_path, monkeypatch, recwarn):
    site = tmp_path / "site"
    write_distribution(site, "zoo-quick", "zoo_quick_isolation", "x = 1\n", entry_name="quick")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("ZOO_LOAD_PLUGINS", "quick")
    from zoo.plugins import get_plugin_manager

    pm = get_plugin_manager((), entry_points=False)
    load_entry_points(pm)
    time.sleep(0.1)
    assert not [w for w in recwarn if issubclass(w.category, PluginWarning)]


@pytest.mark.parametrize(
    ("value", "strict"),
    [("", False), ("0", False), ("off", False), ("OFF", False), ("false", False), ("no", False),
     ("1", True), ("on", True), ("true", True), ("Yes", True)],
)
def test_zoo_strict_plugins_is_read_as_a_boolean(monkeypatch, value, strict):
    monkeypatch.setenv("ZOO_STRICT_PLUGINS", value)
    assert strict_plugins() is strict


def test_zoo_strict_plugins_with_another_value_is_a_one_line_error(tmp_path):
    site = tmp_path / "site"
    write_distribution(site, "zoo-broken-import", "zoo_broken_import_iso", "import a_module_that_does_not_exist\n")
    env = {"PYTHONPATH": str(site)}
    off = run_zoo("list", env={**env, "ZOO_STRICT_PLUGINS": "off"})
    assert off.returncode == 0 and off.stderr.startswith("Warning: plugin 'zoo-broken-import' skipped"), off.stderr
    for args in (("list",), ("--help",)):  # --help loads the plugins' commands outside any command
        bad = run_zoo(*args, env={**env, "ZOO_STRICT_PLUGINS": "maybe"})
        assert bad.returncode == 1, args
        assert bad.stderr == (
            "Error: ZOO_STRICT_PLUGINS='maybe' is not a boolean "
            "(set it to one of 1, true, yes, on, 0, false, no, off, or leave it empty)\n"
        )
