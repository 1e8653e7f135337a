"""RunSpec: the one typed, validated description of a run.

Layers: field defaults < preset TOML (< its ``[scales.<name>]`` table) < ``--set``
overrides / form values. Unknown keys and bad values are rejected with a message
that names the dotted field (``averaging.variant: unknown averaging variant
'nope'; choose one of: ...``). The resolved spec (every default filled in, the
averaging start resolved to an epoch) is what gets saved with the run.

Forms (terminal app, notebook widgets) are generated from :func:`form_fields`,
which walks this schema and the registries, so a field added here appears in
every face without UI code.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from workbench import registry


class SpecError(ValueError):
    """A bad spec: the message is one line naming the field."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _registered(kind: registry.Registry, value: str) -> str:
    registry.load_builtins()
    try:
        entry = kind.get(value)
    except registry.RegistryError as err:  # a ValueError, so pydantic names the field
        raise ValueError(str(err)) from None
    need = entry.meta.get("requires")  # an optional extra (torch_geometric, transformers)
    if need:
        from workbench.lazy import missing

        if msg := missing(need, f"{kind.kind} {value!r}"):
            raise ValueError(msg)
    return value


class ModelSpec(_Section):
    name: str = Field("toy_cnn", description="Network architecture", json_schema_extra={"registry": "models"})
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="Keyword options of the model factory (e.g. width, depth)",
    )

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _registered(registry.MODELS, v)


class DatasetSpec(_Section):
    name: str = Field("digits", description="Dataset", json_schema_extra={"registry": "datasets"})
    root: Optional[str] = Field(None, description="Data folder (default: $WORKBENCH_DATA, else ./data)")
    download: bool = Field(False, description="Download the dataset if it is missing (needs a network)")
    augment: bool = Field(True, description="Training augmentation (for CIFAR: pad 4 + random crop + flip)")
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0, description="Held-out fraction of the training set for val metrics")
    subset: int = Field(0, ge=0, description="Use only this many training examples (0 = all); for smoke runs")
    options: dict[str, Any] = Field(default_factory=dict, description="Keyword options of the dataset loader")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _registered(registry.DATASETS, v)


class OptimizerSpec(_Section):
    name: Literal["sgd", "adam", "adamw"] = Field("sgd", description="Backbone optimizer")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum (0 = plain SGD)")
    nesterov: bool = Field(False, description="Nesterov momentum (SGD)")
    weight_decay: float = Field(5e-4, ge=0.0, description="L2 weight decay (coupled for SGD/Adam, decoupled for AdamW)")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam betas")


class ScheduleSpec(_Section):
    name: str = Field("constant", description="Learning-rate schedule", json_schema_extra={"registry": "schedules"})
    lr: float = Field(0.05, gt=0.0, description="Initial / high learning rate (C_h, a1)")
    lr_end: float = Field(0.01, ge=0.0, description="Final / low learning rate (C_l, a2)")
    horizon: int = Field(0, ge=0, description="figure6: epochs H over which it decays (0 = the run's epochs)")
    cycle: int = Field(0, ge=0, description="cyclic: cycle length c in iterations (0 = one epoch)")
    points: list[tuple[float, float]] = Field(
        default_factory=list, description="piecewise: [[epoch, lr], ...], linear in between"
    )
    swa_phase: Literal["none", "constant", "cyclic"] = Field(
        "none", description="From the averaging start: keep the schedule, or switch to a constant or cyclic SWA LR"
    )
    swa_lr: float = Field(0.01, gt=0.0, description="SWA-phase learning rate (constant, or the cycle's a1)")
    swa_lr_min: float = Field(0.001, ge=0.0, description="cyclic SWA phase: the cycle's a2 (where samples are taken)")
    swa_cycle: int = Field(0, ge=0, description="cyclic SWA phase: cycle length in iterations (0 = one epoch)")

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _registered(registry.SCHEDULES, v)


class AveragingSpec(_Section):
    variant: str = Field("none", description="Averaging variant", json_schema_extra={"registry": "averagers"})
    start: Optional[int] = Field(
        None, ge=0, description="Epochs of backbone before the first window (default: 75 % of the run for swa/kswa, 25 % for pswa)"
    )
    k: int = Field(2, ge=1, le=64, description="kswa: number of sequential windows sharing the averaging budget")
    period: int = Field(20, ge=1, description="pswa: window length P in epochs")
    tail_start: int = Field(
        0, ge=0, description="pswa: epoch where periods stop and one plain SWA window runs to the end (0 = off)"
    )
    cycle: int = Field(0, ge=0, description="Take a sample every c iterations (0 = once per epoch, after its last step)")
    decay: float = Field(0.999, gt=0.0, lt=1.0, description="ema: decay per update")
    every: int = Field(1, ge=1, description="ema: update every k optimizer steps")
    restart_optimizer: Literal["reset", "keep"] = Field(
        "reset", description="At a restart: reset optimizer state (momentum to zero, as the reference) or keep it"
    )
    buffers: Literal["recompute", "average", "copy"] = Field(
        "recompute",
        description="Buffers of the average: recompute BN statistics, average float buffers, or copy the backbone's",
    )
    bn_estimator: Literal["reference", "pooled"] = Field(
        "reference",
        description="BN recalibration: the reference's size-weighted mean of batch statistics, or exact pooled statistics",
    )
    bn_batches: int = Field(0, ge=0, description="Batches used for BN recalibration (0 = the whole training set)")
    eval_every: int = Field(
        1, ge=0, description="Evaluate the average every k epochs inside a window (0 = only at window ends)"
    )
    keep_samples: bool = Field(
        False, description="Save every sample's weights as run artifacts (samples/w01_s001.pt, ...) for analysis"
    )

    @field_validator("variant")
    @classmethod
    def _known(cls, v: str) -> str:
        return _registered(registry.AVERAGERS, v)


class BudgetSpec(_Section):
    epochs: int = Field(30, ge=1, le=100_000, description="Training epochs in total (backbone + averaging)")
    batch_size: int = Field(128, ge=1, description="Training batch size")
    eval_batch_size: int = Field(1000, ge=1, description="Evaluation batch size")
    eval_every: int = Field(1, ge=1, description="Evaluate the backbone every k epochs (and always at the end)")
    checkpoint_every: int = Field(
        0, ge=0, description="Save a resumable checkpoint every k epochs (0 = off); `workbench resume RUN_ID` continues"
    )


class TrackingSpec(_Section):
    enabled: bool = Field(True, description="Log the run to MLflow")
    uri: Optional[str] = Field(
        None, description="MLflow tracking URI (default: $MLFLOW_TRACKING_URI, else sqlite:///mlruns/mlflow.db)"
    )
    experiment: str = Field("workbench", min_length=1, description="MLflow experiment name")
    run_name: Optional[str] = Field(None, description="MLflow run name (default: preset-variant-model-dataset)")
    save_weights: bool = Field(True, description="Save the final backbone and average state dicts as artifacts")


class RunSpec(_Section):
    preset: Optional[str] = Field(None, description="Preset this spec came from")
    description: str = Field("", description="One line describing the run")
    seed: int = Field(0, ge=0, description="Random seed (weights, shuffling, augmentation)")
    device: str = Field("auto", description="auto, cpu, cuda or cuda:N")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto",
        description="Autocast precision of forward passes (auto: bf16 on CUDA, fp32 on CPU); "
        "weights stay fp32 and averages always accumulate in fp32",
    )
    memory_format: Literal["auto", "channels_last", "contiguous"] = Field(
        "auto", description="Image tensor layout (auto: channels_last on CUDA)"
    )
    compile: bool = Field(False, description="torch.compile the backbone's training forward")
    threads: Union[Literal["auto"], int] = Field(
        "auto", description="CPU threads for torch (auto: cores / runs sharing them)"
    )
    deterministic: bool = Field(False, description="Use deterministic kernels only")
    model: ModelSpec = Field(default_factory=ModelSpec)
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    optimizer: OptimizerSpec = Field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    averaging: AveragingSpec = Field(default_factory=AveragingSpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if v in ("auto", "cpu", "cuda") or (v.startswith("cuda:") and v[5:].isdigit()):
            return v
        raise ValueError(f"expected auto, cpu, cuda or cuda:N, got {v!r}")

    @field_validator("threads")
    @classmethod
    def _threads(cls, v: Union[str, int]) -> Union[str, int]:
        if v != "auto" and int(v) < 1:
            raise ValueError("must be 'auto' or a positive integer")
        return v

    @model_validator(mode="after")
    def _windows_fit(self) -> "RunSpec":
        # Averaging windows must lie inside the run; checked here so a bad combination
        # fails before anything is written. The registered builder makes the plan (a
        # PlanError is a ValueError naming its field); the resolved start is filled in
        # so the saved spec says what ran.
        registry.load_builtins()
        plan = registry.AVERAGERS.get(self.averaging.variant).obj(self.averaging, self.budget.epochs)
        if self.averaging.start is None and plan.averaging_start is not None:
            self.averaging.start = plan.averaging_start
        _check_options(registry.MODELS, self.model.name, self.model.options, "model.options")
        _check_options(registry.DATASETS, self.dataset.name, self.dataset.options, "dataset.options")
        if self.budget.checkpoint_every and not self.tracking.enabled:
            raise ValueError("budget.checkpoint_every: checkpoints belong to a tracked run; set tracking.enabled = true")
        return self


def _check_options(reg: registry.Registry, name: str, options: dict[str, Any], field: str) -> None:
    """Options must be keywords of the registered factory (so a typo fails before a run)."""
    import inspect

    registry.load_builtins()
    entry = reg.get(name)
    params = inspect.signature(entry.obj).parameters.values()
    if any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params):
        return
    known = entry.options()
    for key in options:
        if key not in known:
            raise ValueError(f"{field}.{key}: unknown option of {name}; options: {', '.join(known) or 'none'}")


# ----------------------------------------------------------------------------- errors


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if not str(p).startswith("function-")) or "spec"


def format_validation_error(err: ValidationError) -> str:
    """One line: the first error, naming its dotted field."""
    e = err.errors()[0]
    loc = _loc(e["loc"])
    msg = e["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix):]
    if e["type"] == "extra_forbidden":
        msg = "unknown field"
    more = len(err.errors()) - 1
    head = msg if not e["loc"] else f"{loc}: {msg}"  # model-level checks name their field themselves
    return head + (f" (and {more} more)" if more else "")


def validate(data: dict[str, Any]) -> RunSpec:
    """Build a RunSpec or raise SpecError with one line naming the field."""
    try:
        return RunSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(format_validation_error(err)) from None
    except registry.RegistryError as err:  # from a nested validator
        raise SpecError(str(err)) from None


# ----------------------------------------------------------------------------- overrides


def parse_value(text: str) -> Any:
    """A ``--set`` value: TOML syntax when it parses (numbers, bools, lists), else a string."""
    import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def set_path(data: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating tables as needed."""
    keys = dotted.split(".")
    if not all(keys):
        raise SpecError(f"{dotted}: not a field path (expected section.key)")
    node = data
    for k in keys[:-1]:
        nxt = node.setdefault(k, {})
        if not isinstance(nxt, dict):
            raise SpecError(f"{dotted}: {k} is not a section")
        node = nxt
    node[keys[-1]] = value


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Apply ``key=value`` strings (or a {dotted: value} dict) to a nested dict copy."""
    import copy

    out = copy.deepcopy(data)
    if isinstance(overrides, dict):  # values already typed (scale tables, study cells)
        items = overrides.items()
    else:  # command-line strings: parse each value as TOML
        items = [(k, parse_value(v)) for k, v in map(_split, overrides)]
    for key, value in items:
        set_path(out, key, value)
    return out


def _split(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise SpecError(f"{item}: expected --set section.key=value")
    k, v = item.split("=", 1)
    return k.strip(), v.strip()


# ----------------------------------------------------------------------------- flattening


def flatten(spec: RunSpec) -> dict[str, str]:
    """The resolved spec as flat ``section.key -> str`` pairs (MLflow params, diffs)."""
    out: dict[str, str] = {}

    def walk(prefix: str, obj: Any) -> None:
        if isinstance(obj, dict) and obj:
            for k, v in obj.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            out[prefix] = "" if obj is None else str(obj)

    walk("", spec.model_dump(mode="json"))
    return out


def to_toml(spec: RunSpec) -> str:
    import tomli_w

    data = spec.model_dump(mode="json", exclude_none=True)
    return tomli_w.dumps(data)


# ----------------------------------------------------------------------------- forms


def form_fields(spec: RunSpec | None = None) -> list[dict[str, Any]]:
    """Describe every field for a generated form.

    One dict per leaf field: ``path`` (dotted), ``section``, ``type`` (bool, int,
    float, str, choice, list, dict), ``default``, ``value`` (from ``spec``),
    ``choices`` (registry names or literals), ``ge``/``gt``/``le``/``lt`` bounds,
    ``help`` (the field description, or the registry entries' help for choices),
    ``nullable``.
    """
    import typing

    registry.load_builtins()
    regs = {
        "models": registry.MODELS,
        "datasets": registry.DATASETS,
        "schedules": registry.SCHEDULES,
        "averagers": registry.AVERAGERS,
    }
    current = spec.model_dump(mode="json") if spec is not None else RunSpec().model_dump(mode="json")
    fields: list[dict[str, Any]] = []

    def leaf(section: str, name: str, finfo: Any, value: Any) -> dict[str, Any]:
        ann = finfo.annotation
        origin = typing.get_origin(ann)
        args = typing.get_args(ann)
        nullable = origin is Union and type(None) in args
        if nullable:
            ann = next(a for a in args if a is not type(None))
            origin, args = typing.get_origin(ann), typing.get_args(ann)
        d: dict[str, Any] = {
            "path": f"{section}.{name}" if section else name,
            "section": section,
            "name": name,
            "help": finfo.description or "",
            "default": finfo.get_default(call_default_factory=True),
            "value": value,
            "nullable": nullable,
            "choices": None,
        }
        extra = finfo.json_schema_extra or {}
        if "registry" in extra:
            reg = regs[extra["registry"]]
            d["type"] = "choice"
            d["choices"] = reg.names()
            d["choice_help"] = {e.name: e.help for e in reg}
        elif origin is Literal:
            d["type"] = "choice"
            d["choices"] = list(args)
        elif origin is Union:  # e.g. threads: "auto" | int
            d["type"] = "str"
        elif ann is bool:
            d["type"] = "bool"
        elif ann is int:
            d["type"] = "int"
        elif ann is float:
            d["type"] = "float"
        elif ann is str:
            d["type"] = "str"
        elif origin in (list, tuple):
            d["type"] = "list"
        else:
            d["type"] = "dict"
        for m in finfo.metadata:
            for bound in ("ge", "gt", "le", "lt"):
                if getattr(m, bound, None) is not None:
                    d[bound] = getattr(m, bound)
        return d

    for name, finfo in RunSpec.model_fields.items():
        ann = finfo.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            for sub, sinfo in ann.model_fields.items():
                fields.append(leaf(name, sub, sinfo, current[name][sub]))
        else:
            fields.append(leaf("", name, finfo, current[name]))
    return fields
