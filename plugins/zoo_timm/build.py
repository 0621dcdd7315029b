"""Builders for timm architectures: ``zoo_timm.build:<timm model name>`` builds that timm model.

One module-level ``__getattr__`` serves every name, so the curated catalogue and the
``timm/<name>`` passthrough share one builder instead of a copy per architecture.
"""
from __future__ import annotations

from typing import Any, Callable

from zoo.errors import ArgumentError


def __getattr__(name: str) -> Callable[..., Any]:
    if name.startswith("__"):
        raise AttributeError(name)
    import timm

    if not timm.is_model(name):
        raise AttributeError(f"timm has no model {name!r}")

    def build(*, num_classes: int = 1000, in_chans: int = 3, **kwargs: Any) -> Any:
        try:
            return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
        except TypeError as exc:
            raise ArgumentError(f"{name}: {exc}", "see timm's documentation of this model for its arguments") from None

    build.__name__ = build.__qualname__ = name
    build.__doc__ = f"timm's {name} (random initialisation; zoo loads pretrained weights into it)."
    return build
