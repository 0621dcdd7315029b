"""An architecture into a module: import its builder, check the arguments, build (on any device)."""
from __future__ import annotations

import contextlib
import inspect
from typing import Any, Callable

import torch
from torch import nn

from zoo.errors import ArgumentError, PluginError, ZooError
from zoo.heads import model_info, require_complete
from zoo.plugins import import_reference
from zoo.registry import ArchSpec


def builder(arch: ArchSpec) -> Callable[..., nn.Module]:
    """Import the architecture's `module:function` builder."""
    return import_reference(arch.build, f"architecture {arch.name!r} ({arch.plugin}): builder")


def arch_arguments(arch: ArchSpec, args: dict[str, Any]) -> dict[str, Any]:
    """The defaults overlaid with `args`, checked against the builder's signature and the declared choices."""
    classes = args.get("num_classes")
    if classes is not None and (isinstance(classes, bool) or not isinstance(classes, int) or classes < 0):
        raise ArgumentError(f"num_classes must be a non-negative integer, got {classes!r}", "0 gives features only")
    params = inspect.signature(builder(arch)).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    unknown = sorted(set(args) - set(params)) if not takes_any else []
    if unknown:
        valid = ", ".join(n for n in params if params[n].kind is not inspect.Parameter.VAR_POSITIONAL)
        raise ArgumentError(f"{arch.name} takes no argument {', '.join(map(repr, unknown))}", f"valid arguments: {valid}")
    for name, allowed in arch.choices.items():
        if name in args and args[name] not in allowed:
            raise ArgumentError(
                f"{arch.name}: {name}={args[name]!r} is not allowed", f"use one of: {', '.join(map(str, allowed))}"
            )
    return {**arch.defaults, **args}


def build_model(arch: ArchSpec, *, device: str | torch.device | None = None, **args: Any) -> nn.Module:
    """Build `arch` with random weights (on `device`; "meta" allocates nothing), with `model.zoo`."""
    merged = arch_arguments(arch, args)
    build = builder(arch)
    try:
        with torch.device(device) if device is not None else contextlib.nullcontext():
            model = build(**merged)
    except ZooError:
        raise
    except Exception as exc:  # the plugin's code: named, with what it was given, never an internal error
        shown = ", ".join(f"{k}={v!r}" for k, v in merged.items()) or "no arguments"
        raise PluginError(
            f"architecture {arch.name!r} (plugin {arch.plugin}) failed to build with {shown}: {type(exc).__name__}: {exc}",
            "check the architecture arguments; if they are right, report it to the plugin's authors",
        ) from exc
    require_complete(model, f"architecture {arch.name!r} ({arch.plugin})")
    model.zoo = model_info(arch.name, arch.name, arch_args=merged)
    return model


def example_input(
    arch: ArchSpec, batch: int = 2, *, length: int | None = None, args: dict[str, Any] | None = None
) -> torch.Tensor:
    """A random valid input batch for `arch` built with `args` (images, features or token ids)."""
    args = {**arch.defaults, **(args or {})}
    spec = arch.input
    if spec.kind == "tokens":
        vocab = int(args.get("vocab_size") or spec.vocab_size or 2)
        return torch.randint(0, vocab, (batch, length or (spec.shape[0] if spec.shape else 16)))
    if spec.kind == "features":
        return torch.randn(batch, int(args.get("in_features") or spec.shape[0]))
    channels = int(args.get("in_chans") or spec.shape[0])
    return torch.randn(batch, channels, *spec.shape[1:])


def count_params(arch: ArchSpec, **args: Any) -> int:
    """The parameter count, from a build on the meta device (no memory, no init cost)."""
    return sum(p.numel() for p in build_model(arch, device="meta", **args).parameters())
