"""Settings come from configs/default.yaml, then WORKBENCH_CONFIG, then the
environment, then explicit overrides."""

import pytest

from workbench.config import DEFAULT_CONFIG, PROJECT_ROOT, load_settings


def test_defaults_come_from_the_yaml_file(monkeypatch):
    for name in ("WORKBENCH_DATA_DIR", "WORKBENCH_MODELS_DIR", "WORKBENCH_PORT", "WORKBENCH_CONFIG", "WORKBENCH_HOST"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.data_dir == PROJECT_ROOT / "data"
    assert settings.models_dir == PROJECT_ROOT / "trained_models_storage"
    assert settings.host == "127.0.0.1"  # never exposed to the network by default
    assert settings.port == 7860
    assert (settings.score_min, settings.score_max) == (0, 100)


def test_every_yaml_setting_is_commented():
    lines = DEFAULT_CONFIG.read_text().splitlines()
    for i, line in enumerate(lines):
        stripped = line.strip()
        if line.startswith("  ") and ":" in stripped and not stripped.startswith("#"):
            assert lines[i - 1].strip().startswith("#"), f"setting without a comment above it: {stripped}"


def test_environment_overrides_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_DATA_DIR", str(tmp_path / "mine"))
    monkeypatch.setenv("WORKBENCH_PORT", "7999")
    settings = load_settings()
    assert settings.data_dir == tmp_path / "mine"
    assert settings.port == 7999


def test_user_config_file_and_explicit_overrides(monkeypatch, tmp_path):
    user = tmp_path / "me.yaml"
    user.write_text("scores:\n  min: 1\n  max: 10\nserver:\n  port: 8000\n")
    monkeypatch.setenv("WORKBENCH_CONFIG", str(user))
    monkeypatch.delenv("WORKBENCH_PORT", raising=False)
    settings = load_settings(port=8123)
    assert (settings.score_min, settings.score_max) == (1, 10)
    assert settings.port == 8123


def test_unknown_or_inconsistent_settings_are_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("scores:\n  mn: 1\n")
    with pytest.raises(ValueError, match="unknown setting scores.mn"):
        load_settings(bad)
    bad.write_text("scores:\n  min: 10\n  max: 1\n")
    with pytest.raises(ValueError, match="below"):
        load_settings(bad)


def test_relative_paths_resolve_from_the_project_root(tmp_path, monkeypatch):
    monkeypatch.delenv("WORKBENCH_DATA_DIR", raising=False)
    user = tmp_path / "rel.yaml"
    user.write_text("paths:\n  data_dir: my_photos\n")
    assert load_settings(user).data_dir == PROJECT_ROOT / "my_photos"


def test_typed_relative_paths_resolve_from_the_current_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WORKBENCH_DATA_DIR", "labelled")
    assert load_settings().data_dir == tmp_path / "labelled"
    assert load_settings(models_dir="runs").models_dir == tmp_path / "runs"


def test_each_setting_is_declared_once_and_the_yaml_agrees(monkeypatch):
    # the dataclass field names its yaml key and env var; the yaml file holds the same defaults, commented
    import dataclasses

    import yaml

    from workbench.config import SETTINGS, Settings

    for name in ("WORKBENCH_CONFIG", *[f.metadata["env"] for f in SETTINGS if f.metadata["env"]]):
        monkeypatch.delenv(name, raising=False)
    text = DEFAULT_CONFIG.read_text()
    in_yaml = {(section, key): value for section, entries in yaml.safe_load(text).items()
               for key, value in entries.items()}
    declared = {tuple(f.metadata["key"].split(".")): f for f in SETTINGS}
    assert set(in_yaml) == set(declared)
    loaded = load_settings()
    for f in SETTINGS:
        if f.default is not dataclasses.MISSING:
            assert getattr(loaded, f.name) == f.default, f"{f.metadata['key']}: yaml and Settings disagree"
        if f.metadata["env"]:
            assert f"Env: {f.metadata['env']}" in text or f", {f.metadata['env']}" in text, f.metadata["env"]
    assert "extra" not in Settings.__dataclass_fields__


def test_gradio_app_and_serve_take_the_same_options(tmp_path, monkeypatch):
    from workbench.cli import build_parser
    from workbench.config import settings_from_args

    monkeypatch.delenv("WORKBENCH_PORT", raising=False)
    parser = build_parser()
    args = parser.parse_args(["serve", "--cache-dir", str(tmp_path / "c"), "--port", "8001"])
    settings = settings_from_args(args)
    assert (settings.cache_dir, settings.port) == (tmp_path / "c", 8001)
    # given before the command's name, a flag is not undone by the command's own (absent) copy
    assert settings_from_args(parser.parse_args(["--port", "8002", "serve"])).port == 8002
    import subprocess
    import sys

    shown = subprocess.run([sys.executable, "gradio_app.py", "--help"], cwd=PROJECT_ROOT, capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0 and "serve" in shown.stdout
    for flag in ("--host", "--port", "--data-dir", "--models-dir", "--weights-dir", "--cache-dir", "--config"):
        assert flag in shown.stdout


def test_a_wrong_value_in_a_config_file_is_a_clear_error(tmp_path):
    from workbench.errors import WorkbenchError

    bad = tmp_path / "bad.yaml"
    bad.write_text("server:\n  port: eighty\n")
    with pytest.raises(WorkbenchError, match="server.port: 'eighty' is not a valid int"):
        load_settings(bad)
    bad.write_text("server: [unclosed\n")
    with pytest.raises(WorkbenchError, match="cannot read the configuration"):
        load_settings(bad)


def test_serve_json_prints_one_document_once_the_server_answers(workbench_env, tmp_path):
    """``serve --json`` printed the plain "Aesthetic Workbench on …" line; --help promises one JSON document."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import threading

    import httpx
    from conftest import free_port

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "serve", "--json", "--port", str(port)],
                            cwd=PROJECT_ROOT, env={**os.environ, **workbench_env, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)  # every stdout line, to the end
    reader.start()
    try:
        for _ in range(600):  # the first line comes once it listens (imports take 10-30 s on a loaded machine)
            if lines or proc.poll() is not None:
                break
            threading.Event().wait(0.5)
        assert lines, f"nothing on stdout (exit code {proc.poll()})"
        document = json.loads(lines[0])
        assert document == {"url": f"http://127.0.0.1:{port}", "api": f"http://127.0.0.1:{port}/api/docs",
                             "data": workbench_env["WORKBENCH_DATA_DIR"], "runs": workbench_env["WORKBENCH_MODELS_DIR"]}
        assert httpx.get(document["url"] + "/", timeout=30).status_code == 200  # ready when it said so
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl+C: a clean stop prints nothing more on stdout
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
    assert len(lines) == 1, lines  # exactly one document: no "null" after it
