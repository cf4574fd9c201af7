"""Turn Settings into a decision per weight, and check that every name in them exists."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

from ..errors import ConfigError, closest
from ..kinds import Reason, WeightKind
from ..model.inventory import Inventory, Weight
from .settings import NAME_LIST_FIELDS, RANGES_KEY, Settings


@dataclass(frozen=True)
class WeightPlan:
    """What the compiler does with one weight under the current settings."""

    name: str
    quantized: bool
    reason: Reason | None
    range: tuple[float, float] | None
    fused: bool
    fuse_bias: bool = False  # FUSE_BIASADD: when quantized, the weight's bias joins its block


class NameWarning(NamedTuple):
    """A config name gxnpuc ignores; `weight` is the weight it was meant for, when there is one."""

    weight: str | None
    message: str


class Locator(Protocol):
    """Where a key or one of its items sits in the config file (the config reader is one), for messages."""

    def where(self, key: str, item: str | None = None) -> str: ...


def names_of(weight: Weight, tensorflow: bool = False) -> set[str]:
    """The names a config may use for a weight: its own, and those of the nodes consuming it; for a
    TensorFlow model only its own (`-w`) name, the one gxnpuc honours."""
    return {weight.name} if tensorflow else {weight.name, *weight.nodes}


def plan_weights(inventory: Inventory, settings: Settings) -> dict[str, WeightPlan]:
    """One plan per weight, in model order. Names in the settings are resolved through an index, so
    the cost is one dictionary lookup per weight however long the lists are."""
    owners = inventory.name_owners
    excluded = {owner for n in settings.exclude for owner in owners.get(n, ())}
    excluded |= {owner for n in settings.exclude_conv2d for owner in owners.get(n, ())}
    ranges: dict[str, tuple[float, float]] = {}
    for name in sorted(settings.weight_min_max):
        for owner in owners.get(name, ()):
            ranges.setdefault(owner, settings.weight_min_max[name])
    no_fuse = {owner for n in settings.exclude_fuse_bn for owner in inventory.fuse_owners.get(n, ())}
    plans: dict[str, WeightPlan] = {}
    for weight in inventory.weights:
        name = weight.name
        reason = _fp16_reason(weight, settings, name in excluded)
        fused = bool(settings.fuse_bn and weight.bn is not None and name not in no_fuse)
        fuse_bias = settings.fuse_biasadd and weight.bias is not None
        plans[name] = WeightPlan(name, reason is None, reason, ranges.get(name), fused, fuse_bias)
    return plans


def _fp16_reason(weight: Weight, settings: Settings, excluded: bool) -> Reason | None:
    """Why the weight stays fp16 (what gxnpuc never compresses first: no switch would change it), or None."""
    if weight.never_compressed is not None:
        return weight.never_compressed
    if weight.kind == WeightKind.FC and not settings.compress:
        return Reason.COMPRESS_OFF
    if weight.kind == WeightKind.CONV and not settings.conv2d_compress:
        return Reason.CONV2D_COMPRESS_OFF
    if excluded and (weight.kind == WeightKind.CONV or _named_in(weight, settings.exclude)):
        return Reason.EXCLUDED
    return None


def _named_in(weight: Weight, names: tuple[str, ...]) -> bool:
    return bool(names_of(weight) & set(names))


def _tf_weight_of(inventory: Inventory, name: str) -> str | None:
    """For a TensorFlow model: the weight a TF node name (its Const, /read, ExpandDims or consumer) reaches."""
    if not inventory.tensorflow:
        return None
    if name in inventory.tf_aliases and inventory.tf_aliases[name] in inventory.by_name:
        return inventory.tf_aliases[name]
    return next((w.name for w in inventory.weights if name in w.nodes), None)


def check_names(inventory: Inventory, settings: Settings, config: Locator | None = None) -> list[NameWarning]:
    """Refuse a name that matches no weight or node, pointing at the closest real ones; return one warning
    per name that is another spelling of a TensorFlow weight (its Const, /read, ExpandDims or consuming op),
    with the weight it means.

    gxnpuc 1.5.8 matches only the `-w` names and ignores any other silently (the fixture's
    compress_exclude_conv2d: `conv/Conv2D` leaves the kernel compressed), so such a name stays in the
    config and, as in gxnpuc, does nothing; the warning names what to write instead. For an ONNX model
    there is no gxnpuc name to compare with: a consuming node's name counts as its weight's (SPEC section 2),
    so it has its effect and no warning."""
    tf = inventory.tensorflow
    all_names = {n for w in inventory.weights for n in names_of(w, tf)}
    conv_names = {n for w in inventory.weights if w.kind == WeightKind.CONV for n in names_of(w, tf)}
    bn_names = conv_names | {n for w in inventory.weights if w.bn is not None for n in w.bn.labels}
    allowed = {
        "EXCLUDE_COMPRESS_OPS": (all_names, "weight or node"),
        "EXCLUDE_CONV2D_COMPRESS_OPS": (conv_names, "convolution weight or node"),
        "EXCLUDE_FUSE_BN_OPS": (bn_names, "convolution or BatchNormalization"),
    }
    groups = [(key, getattr(settings, attr), *allowed[key]) for key, attr in NAME_LIST_FIELDS.items()]
    groups.append((RANGES_KEY, tuple(settings.weight_min_max), all_names, "weight or node"))
    warnings: list[NameWarning] = []
    for key, names, known, what in groups:
        for name in names:
            if name in known:
                continue
            label = f"{key}[{name!r}]" if key == RANGES_KEY else key
            where = f"{config.where(key, name)}: {label}" if config is not None else label  # file:line first when known
            gxnpuc_name = _tf_weight_of(inventory, name)
            if gxnpuc_name is not None:
                instead = f": write {gxnpuc_name!r}"
            elif _is_tf_node(inventory, name):
                instead = ", and no weight it compresses is read through this node"
            else:
                raise ConfigError(f"{where}: no {what} named {name!r} in the model{closest(name, known)}")
            message = f"{where}: gxnpuc 1.5.8 ignores {name!r} silently (it matches only -w names){instead}"
            warnings.append(NameWarning(gxnpuc_name, message))
    return warnings


def _is_tf_node(inventory: Inventory, name: str) -> bool:
    """Whether a TensorFlow model has a node or folded constant of this name (a depthwise op, its kernel,
    a bias): a name gxnpuc knows but never compresses through. Helper nodes of the reader have a ':'."""
    if not inventory.tensorflow or ":" in name:
        return False
    return name in inventory.node_ops or name in inventory.constants or name in inventory.tf_aliases
