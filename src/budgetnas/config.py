"""Command options as pydantic models; the CLI flags are generated from the fields.

Each command declares one model (subclass of `CommonOptions`). `add_model_arguments` turns its
fields into `--field-name` flags (help text = field description), and `resolve_options` merges a
YAML `--config` file with the flags (flags win) and validates the result. Any invalid value becomes
a `UserError` naming the field and the file it came from.
"""
from __future__ import annotations

import argparse
import types
import typing
from pathlib import Path
from typing import Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import UserError

MAX_SEED = 2**32 - 1  # seeds are combined with epochs and blocks and must stay within 64 bits
MAX_THREADS = 1024  # torch crashes on absurd thread counts instead of refusing them
MAX_IMAGE_SIZE = 4096  # beyond this one resized image alone takes gigabytes

DatasetName = Literal["digits", "cifar10", "cifar100", "imagefolder", "synthetic"]
# (channels, image size, classes) of each dataset, for commands that build networks without
# reading data (profile --space, generate --table); an image folder's classes are unknown.
DATASET_SHAPES: dict[str, tuple[int, int, int | None]] = {
    "digits": (1, 8, 10), "synthetic": (3, 8, 4), "cifar10": (3, 32, 10), "cifar100": (3, 32, 100),
    "imagefolder": (3, 32, None)}


class CommonOptions(BaseModel):
    """Options every command takes."""

    # NaN and infinities are never a meaningful option value (an infinite learning rate or budget
    # would only fail later, inside the work).
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    dataset: DatasetName = Field("digits", description="dataset (digits is built in)")
    data_dir: Path | None = Field(None, description="where the dataset lives")
    download: bool = Field(False, description="download cifar10/cifar100 if missing")
    image_size: int | None = Field(None, ge=4, le=MAX_IMAGE_SIZE,
                                   description="resize images to this size (imagefolder)")
    subset: int | None = Field(None, ge=10, description="use at most this many training images")
    skip_bad_images: bool = Field(False, description="skip unreadable images (counted) instead of failing")
    out: Path | None = Field(None, description="run directory (default runs/<command>-<timestamp>)")
    seed: int = Field(0, ge=0, le=MAX_SEED, description="random seed")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="where to compute")
    resume: bool = Field(False, description="continue the run in --out from its last checkpoint")
    threads: int | None = Field(None, ge=1, le=MAX_THREADS, description="CPU threads for torch")


def _unwrap_optional(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _list_parser(item_type: type):
    def parse(text: str) -> list:
        try:
            return [item_type(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of "
                                             f"{item_type.__name__}, got {text!r}") from None
    return parse


def add_model_arguments(parser: argparse.ArgumentParser, model: type[BaseModel],
                        *, skip: tuple[str, ...] = ()) -> None:
    """Add one flag per field of `model`; defaults stay None so YAML values are not overridden."""
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        flag = "--" + name.replace("_", "-")
        annotation = _unwrap_optional(field.annotation)
        # argparse treats help as a %-format string: a literal "%" in a description must be doubled
        help_text = f"{field.description or ''} (default: {field.default})".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": name, "default": None, "help": help_text}
        if annotation is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(annotation) is Literal:
            choices = list(typing.get_args(annotation))
            kwargs["choices"] = choices
            if all(isinstance(c, int) for c in choices):
                kwargs["type"] = int
        elif typing.get_origin(annotation) is list:
            (item,) = typing.get_args(annotation)
            if typing.get_origin(item) is typing.Annotated:  # list[Annotated[int, Field(...)]]
                item = typing.get_args(item)[0]
            kwargs["type"] = _list_parser(item)
            kwargs["metavar"] = f"{item.__name__.upper()},..."
        elif annotation in (int, float):
            kwargs["type"] = annotation
        else:
            kwargs["type"] = str
        parser.add_argument(flag, **kwargs)
    parser.add_argument("--config", dest="config", default=None,
                        help="YAML file with any of these options (flags override it)")


def load_yaml_config(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise UserError("config file not found", where=str(path), fix="check the path")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"not valid YAML ({str(exc).splitlines()[0]})", where=str(path),
                        fix="fix the YAML syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError("the top level must be a mapping of option: value", where=str(path))
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def resolve_options(model: type[BaseModel], args: argparse.Namespace,
                    extra: dict | None = None) -> BaseModel:
    """YAML config (if any) < flags given on the command line < `extra`; validated by `model`."""
    config_path = getattr(args, "config", None)
    values = load_yaml_config(config_path) if config_path else {}
    for name in model.model_fields:
        flag_value = getattr(args, name, None)
        if flag_value is not None:
            values[name] = flag_value
    values.update(extra or {})
    try:
        return model(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "options"
        item = "".join(f"[{p}]" for p in err["loc"][1:])  # e.g. the first value of a list: [0]
        source = f"{config_path}: {field}{item}" if config_path and field in values and \
            getattr(args, field, None) is None else "--" + field.replace("_", "-") + item
        if err["type"] == "extra_forbidden":
            raise UserError(f"unknown option {field!r}", where=str(config_path or "options"),
                            fix="see --help for the options this command takes") from None
        raise UserError(f"{err['msg']} (got {err.get('input')!r})", where=source,
                        fix="see --help for accepted values") from None


class SearchOptions(CommonOptions):
    """Options of the commands that search (search *, generate)."""

    report: bool = Field(True, description="write report.html into the run directory at the end")


class TargetOptions(SearchOptions):
    """The size a search aims for: one of these (`target()` refuses two)."""

    target_params: int | None = Field(None, ge=1, description="non-zero parameters of the found network")
    target_macs: int | None = Field(None, ge=1, description="MACs of the found network (one sample)")

    def target(self) -> tuple[str, float] | None:
        """(unit, value) of the one target given, or None; two targets are refused (exit 2)."""
        given = [(unit, getattr(self, name)) for unit, name in TARGET_FIELDS.items()
                 if getattr(self, name, None) is not None]
        if len(given) > 1:
            flags = "/".join("--" + TARGET_FIELDS[u].replace("_", "-") for u, _ in given)
            raise UserError("give one target", where=flags, fix="keep one of them")
        return given[0] if given else None


TARGET_FIELDS = {"params": "target_params", "macs": "target_macs", "latency": "target_latency_ms"}


class CellNetworkOptions(TargetOptions):
    """Networks of DARTS cells scaled to a target by their width (the DARTS and random baselines)."""

    preset: Literal["tiny", "darts8_c24", "darts14_c44"] = Field("tiny", description="size preset")
    layers: int | None = Field(None, ge=1, le=64, description="number of cells (overrides the preset)")
    channels: int | None = Field(None, ge=2, le=4096,
                                 description="cell width C without a target (overrides the preset)")
    batch_size: int | None = Field(None, ge=2, description="batch size (overrides the preset)")
    stop_after: int | None = Field(None, ge=1, description="stop after this many steps of work (resumable)")

    PRESETS: ClassVar[dict[str, dict]] = {}  # each method's preset values (cells, C, ...)

    def preset_value(self, key: str, option: str) -> Any:
        """The option if given, else the preset's value."""
        value = getattr(self, option)
        return self.PRESETS[self.preset][key] if value is None else value
