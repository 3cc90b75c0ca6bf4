"""One typed ``Settings`` object from configs/*.yaml, the environment and flags.

Precedence, lowest first: ``configs/default.yaml`` -> the file named by
``WORKBENCH_CONFIG`` -> environment variables -> explicit overrides (CLI flags).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CONFIG = PROJECT_ROOT / "configs" / "default.yaml"

# environment variable -> (section, key)
ENV_OVERRIDES: dict[str, tuple[str, str]] = {
    "WORKBENCH_DATA_DIR": ("paths", "data_dir"),
    "WORKBENCH_MODELS_DIR": ("paths", "models_dir"),
    "WORKBENCH_WEIGHTS_DIR": ("paths", "weights_dir"),
    "WORKBENCH_CACHE_DIR": ("paths", "cache_dir"),
    "WORKBENCH_FILENAME_PATTERN": ("scores", "filename_pattern"),
    "WORKBENCH_HOST": ("server", "host"),
    "WORKBENCH_PORT": ("server", "port"),
    "OPENAI_BASE_URL": ("describe", "llm_base_url"),
    "WORKBENCH_LLM_MODEL": ("describe", "llm_model"),
}


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    models_dir: Path
    weights_dir: Path
    cache_dir: Path
    score_min: float = 0.0
    score_max: float = 100.0
    filename_pattern: str = ""
    max_pixels: int = 200_000_000
    thumbnail_size: int = 256
    gallery_page_size: int = 48
    host: str = "127.0.0.1"
    port: int = 7860
    max_upload_mb: float = 500.0
    body_timeout_s: float = 30.0
    scoring_workers: int = 2
    scoring_queue: int = 4
    default_backbone: str = "efficientnet_lite0"
    batch_size: int = 16
    num_workers: int = 2
    seed: int = 42
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    folds: int = 5
    good_threshold_fraction: float = 0.5
    caption_model: str = "Salesforce/blip-image-captioning-base"
    llm_base_url: str = ""
    llm_model: str = ""
    language: str = "English"
    timeout_seconds: float = 60.0
    max_retries: int = 3
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def features_cache_dir(self) -> Path:
        return self.cache_dir / "features"

    @property
    def thumbnails_dir(self) -> Path:
        return self.cache_dir / "thumbnails"

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)


# yaml (section, key) -> Settings field
_FIELD_OF: dict[tuple[str, str], str] = {
    ("paths", "data_dir"): "data_dir",
    ("paths", "models_dir"): "models_dir",
    ("paths", "weights_dir"): "weights_dir",
    ("paths", "cache_dir"): "cache_dir",
    ("scores", "min"): "score_min",
    ("scores", "max"): "score_max",
    ("scores", "filename_pattern"): "filename_pattern",
    ("images", "max_pixels"): "max_pixels",
    ("images", "thumbnail_size"): "thumbnail_size",
    ("images", "gallery_page_size"): "gallery_page_size",
    ("server", "host"): "host",
    ("server", "port"): "port",
    ("server", "max_upload_mb"): "max_upload_mb",
    ("server", "body_timeout_s"): "body_timeout_s",
    ("server", "scoring_workers"): "scoring_workers",
    ("server", "scoring_queue"): "scoring_queue",
    ("features", "default_backbone"): "default_backbone",
    ("features", "batch_size"): "batch_size",
    ("features", "num_workers"): "num_workers",
    ("training", "seed"): "seed",
    ("training", "val_fraction"): "val_fraction",
    ("training", "test_fraction"): "test_fraction",
    ("training", "folds"): "folds",
    ("predict", "good_threshold_fraction"): "good_threshold_fraction",
    ("describe", "caption_model"): "caption_model",
    ("describe", "llm_base_url"): "llm_base_url",
    ("describe", "llm_model"): "llm_model",
    ("describe", "language"): "language",
    ("describe", "timeout_seconds"): "timeout_seconds",
    ("describe", "max_retries"): "max_retries",
}
_PATH_FIELDS = {"data_dir", "models_dir", "weights_dir", "cache_dir"}


def _read_yaml(path: Path) -> dict[str, dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        loaded = yaml.safe_load(fh) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of sections at the top level")
    return loaded


def _resolve_path(value: Any, base: Path) -> Path:
    path = Path(os.path.expanduser(str(value)))
    return path if path.is_absolute() else (base / path)


def _coerce(name: str, value: Any) -> Any:
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
                    raise ValueError(f"{path}: unknown setting {section}.{key}")
                # Paths in config files are relative to the project; typed ones (env, flags) to the current folder.
                values[name] = _resolve_path(value, PROJECT_ROOT) if name in _PATH_FIELDS else value
    typed = {_FIELD_OF[key]: os.environ[env] for env, key in ENV_OVERRIDES.items() if os.environ.get(env)}
    typed.update({k: v for k, v in overrides.items() if v is not None})
    for name, value in typed.items():
        values[name] = _resolve_path(value, Path.cwd()) if name in _PATH_FIELDS else value
    coerced = {name: _coerce(name, value) for name, value in values.items()}
    if coerced["score_min"] >= coerced["score_max"]:
        raise ValueError("scores.min must be below scores.max")
    return Settings(**coerced)
