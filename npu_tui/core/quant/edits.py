"""Edits of Settings for one weight, as the vendor config spells them: the workbench's keys and the
fix search apply the same ones, so what the search proposes is what a person would have typed."""

from __future__ import annotations

from dataclasses import replace

from ..model.inventory import Inventory
from .plan import names_of
from .settings import Settings


def is_excluded(inventory: Inventory, settings: Settings, name: str) -> bool:
    names = names_of(inventory.by_name[name])
    return bool(names & (set(settings.exclude) | set(settings.exclude_conv2d)))


def exclude(inventory: Inventory, settings: Settings, name: str) -> Settings:
    """The weight stays fp16 (EXCLUDE_COMPRESS_OPS)."""
    if is_excluded(inventory, settings, name):
        return settings
    return replace(settings, exclude=(*settings.exclude, name))


def include(inventory: Inventory, settings: Settings, name: str) -> Settings:
    """Quantized again: out of both exclude lists, whichever name the config used."""
    names = names_of(inventory.by_name[name])
    return replace(
        settings,
        exclude=tuple(n for n in settings.exclude if n not in names),
        exclude_conv2d=tuple(n for n in settings.exclude_conv2d if n not in names),
    )


def set_range(inventory: Inventory, settings: Settings, name: str, lo: float, hi: float) -> Settings:
    """WEIGHT_MIN_MAX for the weight, replacing any entry under another of its names."""
    names = names_of(inventory.by_name[name])
    ranges = {k: v for k, v in settings.weight_min_max.items() if k not in names}
    ranges[name] = (float(lo), float(hi))
    return replace(settings, weight_min_max=ranges)


def reset(inventory: Inventory, settings: Settings, name: str) -> Settings:
    """Back to the automatic range and not excluded."""
    names = names_of(inventory.by_name[name])
    cleared = include(inventory, settings, name)
    return replace(cleared, weight_min_max={k: v for k, v in settings.weight_min_max.items() if k not in names})


def keep_bn(inventory: Inventory, settings: Settings, name: str) -> Settings:
    """The convolution's BatchNormalization is not folded into it (EXCLUDE_FUSE_BN_OPS)."""
    weight = inventory.by_name[name]
    if weight.bn is None or set(inventory.fuse_owners.get(name, ())) & set(settings.exclude_fuse_bn):
        return settings
    return replace(settings, exclude_fuse_bn=(*settings.exclude_fuse_bn, name))
