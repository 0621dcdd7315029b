"""The plugin manager: built-in plugins by import, third-party ones by entry point, each isolated."""
from __future__ import annotations

import dataclasses
import functools
import importlib
import importlib.metadata
import os
import threading
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import pluggy

from zoo import hookspecs
from zoo.errors import ConfigError, DuplicateNameError, PluginError, RegistryError, ZooError

# Built-in plugins are ordinary plugin modules, registered by import in this order.
BUILTIN_PLUGINS: tuple[str, ...] = (
    "zoo_perceptron",
    "zoo_mlp",
    "zoo.data.plugin",
    "zoo.exporters.plugin",
    "zoo.modeldir",
    "zoo.hub",
    "zoo.tasks.builtin",
    "zoo_timm",
    "zoo_rnn",
    "zoo_cnn",
    "zoo_ocr",
)
ENTRY_POINT_GROUP = "zoo"
# A plugin import still running after this many seconds is reported (it cannot be interrupted safely).
SLOW_IMPORT_SECONDS = 5.0
_BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


class PluginWarning(UserWarning):
    """A plugin was skipped because it is broken."""


@dataclass
class PluginRecord:
    """What `zoo plugins` shows about one plugin."""

    name: str
    module: str
    version: str | None = None
    builtin: bool = False
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


def import_reference(reference: str, owner: str) -> Any:
    """Import a plugin's `"module:function"` string; `owner` names who registered it, for the error."""
    module_name, _, attr = reference.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise PluginError(
            f"{owner}: {reference!r} cannot be imported: {exc}", "reinstall the plugin that registers it"
        ) from None


def accept_instances(kind: type) -> Callable[[Any, str], Any]:
    """An `accept` for `ZooPluginManager.collect`: items must be `kind`; each is stamped with its plugin."""

    def accept(item: Any, plugin: str) -> Any:
        if not isinstance(item, kind):
            raise RegistryError(f"expected a {kind.__name__}, got {type(item).__name__}: {item!r}")
        return dataclasses.replace(item, plugin=plugin)

    return accept


def strict_plugins() -> bool:
    """Whether ZOO_STRICT_PLUGINS asks for a broken plugin to be fatal (1/0, true/false, yes/no, on/off)."""
    value = os.environ.get("ZOO_STRICT_PLUGINS", "")
    if not value.strip():
        return False
    try:
        return _BOOLEANS[value.strip().lower()]
    except KeyError:
        raise ConfigError(
            f"ZOO_STRICT_PLUGINS={value!r} is not a boolean",
            f"set it to one of {', '.join(_BOOLEANS)}, or leave it empty",
        ) from None


def contained(call: Callable[[], Any]) -> tuple[Any, BaseException | None]:
    """Run plugin code: (its result, None), or (None, what it raised); only KeyboardInterrupt passes.

    A plugin's `sys.exit()` or its own BaseException must not end the host, so both are caught.
    """
    try:
        return call(), None
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: B036 - SystemExit from a plugin is contained on purpose
        return None, exc


def _raised(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def allowed_plugins() -> set[str] | None:
    """The third-party plugins ZOO_LOAD_PLUGINS allows: None when unset (all of them)."""
    value = os.environ.get("ZOO_LOAD_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


class ZooPluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers every plugin it saw, and isolates the broken ones."""

    def __init__(self) -> None:
        super().__init__("zoo")
        self.add_hookspecs(hookspecs)
        self.records: dict[str, PluginRecord] = {}

    def add(self, plugin: Any, name: str, *, version: str | None = None, builtin: bool = False) -> None:
        """Register `plugin` under `name`, or record why it could not be."""
        record = self.records.setdefault(
            name, PluginRecord(name=name, module=getattr(plugin, "__name__", name), version=version, builtin=builtin)
        )
        try:
            self.register(plugin, name=name)
        except Exception as exc:  # pluggy rejects bad hook signatures with its own errors
            self.fail(name, f"could not be registered: {exc}")
            return
        record.hooks = sorted(caller.name for caller in self.get_hookcallers(plugin) or [])

    def fail(self, name: str, message: str) -> None:
        """Mark plugin `name` as broken: fatal under ZOO_STRICT_PLUGINS, otherwise skipped with a warning."""
        record = self.records.setdefault(name, PluginRecord(name=name, module=name))
        if record.error is None:
            record.error = message
        if self.get_plugin(name) is not None:
            self.unregister(name=name)
        if strict_plugins():
            raise PluginError(f"plugin {name!r} failed: {message}", "fix or uninstall it, or unset ZOO_STRICT_PLUGINS")
        warnings.warn(f"plugin {name!r} skipped: {message}", PluginWarning, stacklevel=2)

    def skip(self, name: str, message: str) -> None:
        """Drop one entry of plugin `name` (the rest of it stays): fatal under ZOO_STRICT_PLUGINS, else a warning."""
        record = self.records.setdefault(name, PluginRecord(name=name, module=name))
        record.warnings.append(message)
        if strict_plugins():
            raise PluginError(f"plugin {name!r} failed: {message}", "fix or uninstall it, or unset ZOO_STRICT_PLUGINS")
        warnings.warn(f"plugin {name!r}: {message}", PluginWarning, stacklevel=2)

    def collect(self, hook: str, accept: Callable[[Any, str], Any], key: Callable[[Any], str]) -> dict[str, Any]:
        """Call `hook` plugin by plugin with a `register` callback; return name -> accepted item.

        `accept(*args, plugin_name)` validates what the plugin passed to `register` (one item, or
        a prefix and a resolver) and returns what to store (it raises on a bad one). A plugin whose hook raises, that registers a bad item or a name another plugin already
        registered is failed, and none of its items from this hook are kept.
        """
        found: dict[str, Any] = {}
        owner: dict[str, str] = {}
        for impl in getattr(self.hook, hook).get_hookimpls():  # registration order
            plugin = impl.plugin_name
            batch: list[Any] = []

            def register(*item: Any, _batch: list[Any] = batch, _plugin: str = plugin) -> None:
                _batch.append(accept(*item, _plugin))

            _, exc = contained(lambda: impl.function(**{arg: register for arg in impl.argnames}))
            names = [key(item) for item in batch]
            for name in names:
                if exc is None and (name in owner or names.count(name) > 1):
                    exc = DuplicateNameError(
                        f"{name!r} is registered by both {owner.get(name, plugin)!r} and {plugin!r}",
                        "uninstall one of the two plugins, or rename the entry",
                    )
            if exc is not None:
                self.fail(plugin, f"{hook}: {exc}" if isinstance(exc, ZooError) else f"{hook} raised {_raised(exc)}")
                continue
            for item, name in zip(batch, names):
                found[name] = item
                owner[name] = plugin
            if plugin in self.records and names:
                self.records[plugin].registered[hook.removeprefix("register_")] = names
        return found

    def call_commands(self, cli: Any) -> None:
        """Let every plugin add its commands to the click group, isolating failures.

        A plugin may only add commands: one that replaces or removes a built-in command or another
        plugin's is put back, and the plugin's entry is skipped with a warning naming both.
        """
        owners = {name: f"the built-in command 'zoo {name}'" for name in cli.commands}
        for impl in self.hook.register_commands.get_hookimpls():
            plugin = impl.plugin_name
            before = dict(cli.commands)
            _, exc = contained(lambda: impl.function(**{arg: cli for arg in impl.argnames}))
            added = sorted(set(cli.commands) - set(before))
            if exc is not None:
                for name in added:
                    del cli.commands[name]
            for name, command in before.items():
                if cli.commands.get(name) is not command:
                    cli.commands[name] = command
                    if exc is None:
                        self.skip(plugin, f"command {name!r} is already {owners[name]}; skipped")
            if exc is not None:
                self.fail(plugin, f"register_commands raised {_raised(exc)}")
                continue
            owners.update({name: f"the command of plugin {plugin!r}" for name in added})
            record = self.records.get(plugin)
            if record is not None and added:
                record.registered["commands"] = added


def get_plugin_manager(
    builtins: tuple[str, ...] = BUILTIN_PLUGINS, *, entry_points: bool = True
) -> ZooPluginManager:
    """A fresh plugin manager with the built-in plugins and (unless told not to) the installed ones."""
    strict_plugins()  # a ZOO_STRICT_PLUGINS that is no boolean is an error before anything loads
    pm = ZooPluginManager()
    for module_name in builtins:
        module, exc = contained(lambda: importlib.import_module(module_name))
        if exc is not None:
            pm.records[module_name] = PluginRecord(name=module_name, module=module_name, builtin=True)
            pm.fail(module_name, f"import failed: {_raised(exc)}")
            continue
        pm.add(module, module_name, version=_zoo_version(), builtin=True)
    if entry_points:
        load_entry_points(pm)
    return pm


def load_entry_points(pm: ZooPluginManager) -> None:
    """Import the plugins in the `zoo` entry-point group that ZOO_LOAD_PLUGINS allows."""
    allowed = allowed_plugins()
    found = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    if allowed:
        _warn_unknown_allowed(allowed, found)
    for ep in found:
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        if allowed is not None and ep.name not in allowed and dist_name not in allowed:
            continue
        if pm.get_plugin(ep.name) is not None or ep.name in pm.records:
            continue
        version = dist.version if dist is not None else None
        pm.records[ep.name] = PluginRecord(name=ep.name, module=ep.value, version=version)
        plugin, exc = _timed_import(ep)
        if exc is not None:
            pm.fail(ep.name, f"import of {ep.value!r} failed: {_raised(exc)}")
            continue
        pm.add(plugin, ep.name, version=version)


def _warn_unknown_allowed(allowed: set[str], found: Any) -> None:
    """A name in ZOO_LOAD_PLUGINS that is no installed plugin (a typo loads nothing): say so, with the names there are."""
    installed = sorted({ep.name for ep in found})
    known = set(installed) | {ep.dist.metadata["Name"] for ep in found if getattr(ep, "dist", None) is not None}
    unknown = sorted(allowed - known)
    if unknown:
        warnings.warn(
            f"ZOO_LOAD_PLUGINS names {', '.join(map(repr, unknown))}, which is no installed plugin; "
            f"installed plugins: {', '.join(installed) or 'none'}",
            PluginWarning,
            stacklevel=3,
        )


def _timed_import(ep: importlib.metadata.EntryPoint) -> tuple[Any, BaseException | None]:
    """Load an entry point; if it is still importing after SLOW_IMPORT_SECONDS, say so (a PluginWarning)."""
    seconds = SLOW_IMPORT_SECONDS
    note = (
        f"plugin {ep.name!r} is still importing after {seconds:g} s ({ep.value}); "
        "if it hangs, leave it out with ZOO_LOAD_PLUGINS (e.g. ZOO_LOAD_PLUGINS= for built-ins only)"
    )
    timer = threading.Timer(seconds, warnings.warn, (note, PluginWarning))
    timer.daemon = True
    timer.start()
    try:
        return contained(ep.load)
    finally:
        timer.cancel()


def _zoo_version() -> str:
    from zoo.version import __version__

    return __version__


def records(pm: ZooPluginManager) -> list[dict[str, Any]]:
    """The plugin records as plain data, for `zoo plugins --json`."""
    return [dataclasses.asdict(record) for record in pm.records.values()]


@functools.lru_cache(maxsize=1)
def default_plugin_manager() -> ZooPluginManager:
    """The process-wide plugin manager, created on first need (never on `import zoo`)."""
    return get_plugin_manager()
