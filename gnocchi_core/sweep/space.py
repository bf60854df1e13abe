"""A sweep's search space: a JSON object of config-field overrides whose values may be search domains.

The grammar (the same fields as ``gnocchi train --config``, nested ``train`` object included)::

    {"dropout_rate": {"uniform": [0.0, 0.6]},          # a float drawn uniformly in [lo, hi]
     "train": {"lr": {"loguniform": [1e-4, 1e-2]},     # log-uniformly in [lo, hi], 0 < lo < hi
               "epochs": 200},                          # a plain value: fixed for every trial
     "kl_ic_scale": {"choice": [1e-5, 1e-4]},           # one of the listed values
     "fac_dim": {"randint": [20, 40]}}                  # an integer lo ≤ n ≤ hi (both included)

A domain is an object with exactly one key, ``uniform``, ``loguniform``, ``choice`` or ``randint``;
any other value is fixed. Everything is checked before Ray starts: unknown fields, malformed domains,
and every domain's bounds and choices against the config's own rules (``LfadsConfig.from_dict`` /
``GnocchiConfig.from_dict``), so a trial never fails on a value the space allows. ``train.epochs``
and ``train.checkpoint_every`` must be fixed: the schedulers count epochs, and population-based
training exchanges weights at checkpoints.

Nothing here imports Ray until `SearchSpace.param_space` (or `mutations`) builds Ray's domains.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import typing
from dataclasses import dataclass

from ..assets import model_classes
from ..data.validation import describe
from ..errors import ConfigError

DOMAINS = ("uniform", "loguniform", "choice", "randint")
KINDS = ("gnocchi", "lfads")
#: fields a sweep fixes for all trials
FIXED_FIELDS = ("train.epochs", "train.checkpoint_every")
#: the fields population-based training perturbs when the space searches them: what changes training
#: from where it stands without changing the network's shape or the data (AutoLFADS perturbs
#: LFADS's learning rate, dropout, coordinated dropout and KL / L2 weights). Other searched fields are
#: drawn once per trial and copied with the weights when a trial clones another.
PERTURBABLE = {
    "lfads": ("train.lr", "dropout_rate", "cd_rate", "kl_ic_scale", "kl_co_scale", "l2_gen_scale", "l2_con_scale",
              "l2_ic_enc_scale", "l2_ci_enc_scale", "train.grad_clip"),
    "gnocchi": ("train.lr", "dropout", "lambda_rec", "lambda_mmd", "code_dropout", "train.grad_clip"),
}


@dataclass(frozen=True)
class Domain:
    """One search domain: ``kind`` (uniform, loguniform, choice, randint) and its JSON arguments."""

    kind: str
    args: tuple

    @property
    def bounds(self) -> tuple[float, float] | None:
        """(lo, hi) of a numeric range; None for a choice."""
        return None if self.kind == "choice" else (self.args[0], self.args[1])

    def examples(self) -> list:
        """The values checked against the config: both bounds, or every choice."""
        return list(self.args) if self.kind == "choice" else [self.args[0], self.args[1]]

    def to_json(self):
        return {self.kind: list(self.args)}

    def to_tune(self):
        """Ray Tune's domain (randint's upper bound is exclusive there, inclusive here)."""
        from ray import tune

        if self.kind == "uniform":
            return tune.uniform(*self.args)
        if self.kind == "loguniform":
            return tune.loguniform(*self.args)
        if self.kind == "randint":
            return tune.randint(self.args[0], self.args[1] + 1)
        return tune.choice(list(self.args))

    def to_mutation(self):
        """What population-based training perturbs: Ray multiplies a numeric domain's value by 0.8 or 1.2
        (or redraws it); a choice is given as its list, so Ray moves to a neighbouring value (or redraws)
        instead of multiplying it off the list."""
        return list(self.args) if self.kind == "choice" else self.to_tune()

    def clip(self, value):
        """``value`` inside the domain (population-based training multiplies values by 0.8 or 1.2): a number
        clipped to [lo, hi], a choice snapped to the nearest listed value."""
        if self.kind == "choice":
            if value in self.args:
                return value
            numbers = [v for v in self.args if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if numbers and isinstance(value, (int, float)) and not isinstance(value, bool):
                return min(numbers, key=lambda v: abs(v - value))
            return value
        lo, hi = self.args
        value = min(max(value, lo), hi)
        return int(round(value)) if self.kind == "randint" else float(value)


@dataclass
class SearchSpace:
    """A parsed space: fixed overrides (nested, as ``--config`` takes them) and domains by dotted field."""

    kind: str
    fixed: dict
    domains: dict[str, Domain]
    path: str | None = None
    source: dict | None = None  # the JSON object as read

    # ------------------------------------------------------------------ views
    @property
    def searched(self) -> list[str]:
        """The dotted names of the searched fields, in the space's order."""
        return list(self.domains)

    def perturbable(self) -> list[str]:
        """The searched fields population-based training perturbs (`PERTURBABLE`)."""
        return [key for key in self.domains if key in PERTURBABLE[self.kind]]

    def param_space(self) -> dict:
        """Ray Tune's ``param_space``: the domains, nested like the config (``{"train": {"lr": ...}}``)."""
        return _nest({key: domain.to_tune() for key, domain in self.domains.items()})

    def mutations(self) -> dict:
        """Population-based training's ``hyperparam_mutations``: the perturbable fields' domains, nested."""
        return _nest({key: self.domains[key].to_mutation() for key in self.perturbable()})

    def overrides(self, sampled: dict, epochs: int | None = None) -> dict:
        """The config overrides of one trial: the fixed values, the sampled ones (nested, as Ray gives a
        trial's config) on top, and ``epochs`` as ``train.epochs`` when given."""
        merged = copy.deepcopy(self.fixed)
        for key, value in flatten(sampled).items():
            _set(merged, key, value)
        if epochs is not None:
            _set(merged, "train.epochs", epochs)
        return merged

    def config(self, sampled: dict | None = None, epochs: int | None = None):
        """The model config of one trial (`overrides` built into the kind's config class); without
        ``sampled``, each domain's first bound or choice."""
        if sampled is None:
            sampled = _nest({key: domain.examples()[0] for key, domain in self.domains.items()})
        return model_classes(self.kind)[1].from_dict(self.overrides(sampled, epochs), path=self.path)


def flatten(nested: dict, prefix: str = "") -> dict:
    """``{"train": {"lr": 1}}`` → ``{"train.lr": 1}``."""
    flat = {}
    for key, value in nested.items():
        if isinstance(value, dict) and key == "train" and not prefix:
            flat.update(flatten(value, "train."))
        else:
            flat[prefix + key] = value
    return flat


def _nest(flat: dict) -> dict:
    nested: dict = {}
    for key, value in flat.items():
        _set(nested, key, value)
    return nested


def _set(nested: dict, dotted: str, value) -> None:
    *parents, leaf = dotted.split(".")
    node = nested
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


# ---------------------------------------------------------------------- reading and checking
def read_space(path: str | os.PathLike, kind: str) -> SearchSpace:
    """The search space in a JSON file, checked against ``kind``'s config (see the module docstring);
    a ConfigError naming the file and the field otherwise."""
    from ..models.base import read_json

    if not os.path.isfile(path):
        raise ConfigError("file not found" if not os.path.exists(path) else "is a folder, expected a JSON file",
                          path=path)
    return parse_space(read_json(path, ConfigError), kind, path=path)


def parse_space(obj, kind: str, path: str | os.PathLike | None = None) -> SearchSpace:
    """A search space from a JSON-like object (``path``: the file it came from, for errors)."""
    path = None if path is None else os.fspath(path)
    cls = model_classes(kind)[1]
    if not isinstance(obj, dict):
        raise ConfigError("not a search space", path=path, expected="a JSON object of config fields, each a value or "
                          "a search domain", found=describe(obj))
    fixed: dict = {}
    domains: dict[str, Domain] = {}
    for key, value in obj.items():
        if key == "train":
            if not isinstance(value, dict):
                raise ConfigError(field="train", path=path, expected="an object of training settings (values or "
                                  "search domains)", found=describe(value))
            if _domain_like(value):
                raise ConfigError("cannot be searched as a whole; search its fields", field="train", path=path,
                                  expected='an object such as {"lr": {"loguniform": [1e-4, 1e-2]}}',
                                  found=describe(value))
            for sub, subvalue in value.items():
                _take(f"train.{sub}", subvalue, fixed, domains, path)
        else:
            _take(str(key), value, fixed, domains, path)
    space = SearchSpace(kind, fixed, domains, path, source=json.loads(json.dumps(obj)))
    _check(space, cls)
    return space


def _domain_like(value) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in DOMAINS


def _take(key: str, value, fixed: dict, domains: dict, path) -> None:
    if not isinstance(value, dict):
        _set(fixed, key, value)
        return
    if not _domain_like(value):
        raise ConfigError(field=key, path=path, expected="a value or a search domain: an object with one key, "
                          + ", ".join(DOMAINS) + ' (e.g. {"uniform": [0.0, 0.5]})', found=describe(value))
    if key in FIXED_FIELDS:
        raise ConfigError("must be a fixed value in a sweep (the schedulers count epochs and exchange weights at "
                          "checkpoints)", field=key, path=path, found=describe(value))
    (name, args), = value.items()
    domains[key] = _domain(name, args, key, path)


def _domain(name: str, args, key: str, path) -> Domain:
    def bad(expected: str):
        return ConfigError(f"bad {name} domain", field=key, path=path, expected=expected, found=describe(args))

    if name == "choice":
        if not isinstance(args, list) or not args:
            raise bad("a non-empty list of values")
        return Domain(name, tuple(args))
    numbers = isinstance(args, list) and len(args) == 2 and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in args)
    if name == "randint":
        if not (numbers and all(float(v).is_integer() for v in args) and args[0] <= args[1]):
            raise bad("[lo, hi]: two integers, lo ≤ hi (both included)")
        return Domain(name, (int(args[0]), int(args[1])))
    if not numbers or not args[0] < args[1]:
        raise bad("[lo, hi]: two numbers, lo < hi")
    if name == "loguniform" and not args[0] > 0:
        raise bad("[lo, hi]: two numbers, 0 < lo < hi")
    return Domain(name, (float(args[0]), float(args[1])))


def _field_type(cls, key: str):
    """The annotated type of a dotted config field, or None for an unknown one (from_dict names it)."""
    *parents, leaf = key.split(".")
    for parent in parents:
        hints = typing.get_type_hints(cls)
        if parent not in hints or not dataclasses.is_dataclass(hints[parent]):
            return None
        cls = hints[parent]
    return typing.get_type_hints(cls).get(leaf)


def _check(space: SearchSpace, cls) -> None:
    """Every field known and every domain's bounds or choices a valid value of its field."""
    first = {key: domain.examples()[0] for key, domain in space.domains.items()}
    cls.from_dict(space.overrides(_nest(first)), path=space.path)  # unknown fields, fixed values
    for key, domain in space.domains.items():
        kind = _field_type(cls, key)
        if kind is int and domain.kind in ("uniform", "loguniform"):
            raise ConfigError(f"an integer field cannot take a {domain.kind} domain (its draws are fractional)",
                              field=key, path=space.path, expected='{"randint": [lo, hi]} or {"choice": [...]}',
                              found=describe(domain.to_json()))
        for value in domain.examples():
            try:
                cls.from_dict(space.overrides(_nest(first | {key: value})), path=space.path)
            except ConfigError as err:
                what = f"bound {value!r}" if domain.kind != "choice" else f"choice {value!r}"
                raise ConfigError(f"the {domain.kind} domain's {what} is not a valid value"
                                  + (f" ({err.message})" if err.message and err.expected is None else ""),
                                  field=err.field if err.field and err.field != key else key, path=space.path,
                                  expected=err.expected, found=None if err.expected is None else describe(value)
                                  ) from None


@dataclass
class ClipToSpace:
    """Population-based training's ``custom_explore_fn``: after Ray perturbs a trial's values (×0.8 or ×1.2, or a
    fresh draw), bring each back inside its domain, so a rate stays a fraction and the config stays valid."""

    domains: dict[str, Domain]

    def __call__(self, config: dict) -> dict:
        for key, domain in self.domains.items():
            *parents, leaf = key.split(".")
            node = config
            for parent in parents:
                node = node.get(parent, {})
            if leaf in node:
                node[leaf] = domain.clip(node[leaf])
        return config
