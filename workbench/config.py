"""One typed ``Settings`` object from configs/*.yaml, the environment and flags.

Precedence, lowest first: ``configs/default.yaml`` -> the file named by
``WORKBENCH_CONFIG`` -> environment variables -> explicit overrides (CLI flags).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from workbench.errors import BadInput

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"

def setting(key: str, default: Any = dataclasses.MISSING, *, env: str | None = None, flag: str | None = None,
            help: str = "") -> Any:
    """A Settings field, declared once: its ``section.key`` in the yaml files, the environment variable
    that overrides it, and the command-line flag (``gradio_app.py`` and the CLI) that overrides that."""
    return field(default=default, metadata={"key": key, "env": env, "flag": flag, "help": help})


# The defaults here are the ones in configs/default.yaml (a test keeps the two equal); the yaml file
# is where a person reads and changes them, with a comment for each.
@dataclass(frozen=True)
class Settings:
    data_dir: Path = setting("paths.data_dir", env="WORKBENCH_DATA_DIR", flag="--data-dir",
                             help="labelled set folder, default data/")
    models_dir: Path = setting("paths.models_dir", env="WORKBENCH_MODELS_DIR", flag="--models-dir",
                               help="trained runs folder, default trained_models_storage/")
    weights_dir: Path = setting("paths.weights_dir", env="WORKBENCH_WEIGHTS_DIR", flag="--weights-dir",
                                help="local pretrained weights folder")
    cache_dir: Path = setting("paths.cache_dir", env="WORKBENCH_CACHE_DIR", flag="--cache-dir",
                              help="thumbnail and feature cache folder")
    score_min: float = setting("scores.min", 0.0)
    score_max: float = setting("scores.max", 100.0)
    filename_pattern: str = setting("scores.filename_pattern", "", env="WORKBENCH_FILENAME_PATTERN")
    ratings_source: str = setting("ratings.source", "auto")
    star_scores: str = setting("ratings.star_scores", "")
    rejected: str = setting("ratings.rejected", "minimum")
    new_sidecar: str = setting("ratings.new_sidecar", "stem")
    stars_out: str = setting("ratings.stars_out", "thresholds")
    max_pixels: int = setting("images.max_pixels", 200_000_000)
    thumbnail_size: int = setting("images.thumbnail_size", 256)
    gallery_page_size: int = setting("images.gallery_page_size", 48)
    number_keys: str = setting("keyboard.number_keys", "stars")
    host: str = setting("server.host", "127.0.0.1", env="WORKBENCH_HOST", flag="--host",
                        help="interface to bind, default 127.0.0.1")
    port: int = setting("server.port", 7860, env="WORKBENCH_PORT", flag="--port", help="port of the UI and its API, default 7860")
    max_upload_mb: float = setting("server.max_upload_mb", 500.0)
    body_timeout_s: float = setting("server.body_timeout_s", 30.0)
    scoring_workers: int = setting("server.scoring_workers", 2)
    scoring_queue: int = setting("server.scoring_queue", 4)
    default_backbone: str = setting("features.default_backbone", "efficientnet_lite0")
    batch_size: int = setting("features.batch_size", 16)
    num_workers: int = setting("features.num_workers", 2)
    runtime: str = setting("features.runtime", "auto", env="WORKBENCH_RUNTIME", flag="--runtime",
                           help="CPU runtime of the networks: auto (the faster of ONNX Runtime and OpenVINO where it "
                                "matches PyTorch), torch, onnxruntime or openvino")
    seed: int = setting("training.seed", 42)
    val_fraction: float = setting("training.val_fraction", 0.15)
    test_fraction: float = setting("training.test_fraction", 0.15)
    folds: int = setting("training.folds", 5)
    good_threshold_fraction: float = setting("predict.good_threshold_fraction", 0.5)
    caption_model: str = setting("describe.caption_model", "Salesforce/blip-image-captioning-base")
    llm_base_url: str = setting("describe.llm_base_url", "", env="OPENAI_BASE_URL")
    llm_model: str = setting("describe.llm_model", "", env="WORKBENCH_LLM_MODEL")
    language: str = setting("describe.language", "English")
    timeout_seconds: float = setting("describe.timeout_seconds", 60.0)
    max_retries: int = setting("describe.max_retries", 3)

    @property
    def features_cache_dir(self) -> Path:
        return self.cache_dir / "features"

    @property
    def thumbnails_dir(self) -> Path:
        return self.cache_dir / "thumbnails"

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


class ConfigError(BadInput):
    """A configuration file or value that cannot be used (unknown key, wrong type, bad range)."""


# Derived from the fields above, never written out again.
SETTINGS = dataclasses.fields(Settings)
_FIELD_OF: dict[tuple[str, str], str] = {tuple(f.metadata["key"].split(".", 1)): f.name for f in SETTINGS}
ENV_OVERRIDES: dict[str, str] = {f.metadata["env"]: f.name for f in SETTINGS if f.metadata["env"]}
_PATH_FIELDS = {f.name for f in SETTINGS if f.type in (Path, "Path")}


def add_setting_flags(parser, *, only_if_given: bool = False) -> None:
    """Add ``--data-dir``, ``--port`` ... (every setting with a flag) and ``--config`` to an argparse parser.

    ``only_if_given``: for a sub-command repeating the main parser's flags, so that an absent flag there
    does not overwrite one given before the sub-command's name.
    """
    default = argparse.SUPPRESS if only_if_given else None
    for f in SETTINGS:
        if f.metadata["flag"]:
            kind = int if f.type in (int, "int") else None
            parser.add_argument(f.metadata["flag"], dest=f.name, type=kind, default=default,
                                help=f"{f.metadata['help']} (env {f.metadata['env']})")
    parser.add_argument("--config", default=default,
                        help="a YAML file overriding configs/default.yaml (env WORKBENCH_CONFIG)")


def settings_from_args(args) -> "Settings":
    """The Settings for parsed arguments of a parser given :func:`add_setting_flags`."""
    flags = {f.name: getattr(args, f.name, None) for f in SETTINGS if f.metadata["flag"]}
    return load_settings(getattr(args, "config", None), **flags)


def _read_yaml(path: Path) -> dict[str, dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as fh:
            loaded = yaml.safe_load(fh) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the configuration {path}: {exc}") from None
    if not isinstance(loaded, dict):
        raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    return loaded


def _resolve_path(value: Any, base: Path) -> Path:
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else (base / path)


def _coerce(name: str, value: Any) -> Any:
    try:
        return _coerce_value(name, value)
    except (TypeError, ValueError):
        key = Settings.__dataclass_fields__[name].metadata["key"]
        raise ConfigError(f"{key}: {value!r} is not a valid {Settings.__dataclass_fields__[name].type}") from None


def _coerce_value(name: str, value: Any) -> Any:
    if name in _PATH_FIELDS:
        return Path(value)
    default = Settings.__dataclass_fields__[name].default
    if isinstance(default, bool):
        return str(value).lower() in {"1", "true", "yes", "on"}
    if isinstance(default, int):
        return int(value)
    if isinstance(default, float):
        return float(value)
    return "" if value is None else str(value)


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build the Settings; ``overrides`` with value None are ignored."""
    values: dict[str, Any] = {}
    files = [DEFAULT_CONFIG]
    extra_file = config_file or os.environ.get("WORKBENCH_CONFIG")
    if extra_file:
        files.append(Path(extra_file))
    for path in files:
        for section, entries in _read_yaml(path).items():
            for key, value in (entries or {}).items():
                name = _FIELD_OF.get((section, key))
                if name is None:
                    raise ConfigError(f"{path}: unknown setting {section}.{key}")
                # Paths in config files are relative to the project; typed ones (env, flags) to the current folder.
                values[name] = _resolve_path(value, PROJECT_ROOT) if name in _PATH_FIELDS else value
    typed = {name: os.environ[env] for env, name in ENV_OVERRIDES.items() if os.environ.get(env)}
    typed.update({k: v for k, v in overrides.items() if v is not None})
    for name, value in typed.items():
        values[name] = _resolve_path(value, Path.cwd()) if name in _PATH_FIELDS else value
    coerced = {name: _coerce(name, value) for name, value in values.items()}
    if coerced["score_min"] >= coerced["score_max"]:
        raise ConfigError("scores.min must be below scores.max")
    return Settings(**coerced)
