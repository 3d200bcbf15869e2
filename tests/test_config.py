from __future__ import annotations

from pathlib import Path

import pytest

from kue.config import load_settings, mask_url
from kue.errors import ConfigError


def test_default_is_a_sqlite_file_in_the_working_directory(tmp_path: Path) -> None:
    s = load_settings(env={}, cwd=tmp_path)
    assert s.url == f"sqlite:///{tmp_path}/kue.sqlite3"
    assert s.backend == "sqlite"
    assert s.queues == ["default"]


def test_precedence_flags_then_env_then_kue_toml_then_pyproject(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.kue]\nurl = "memory://py"\nqueues = ["p"]\n')
    assert load_settings(env={}, cwd=tmp_path).url == "memory://py"
    (tmp_path / "kue.toml").write_text('url = "memory://toml"\nimport = ["myapp.jobs"]\n')
    s = load_settings(env={}, cwd=tmp_path)
    assert (s.url, s.imports, s.queues) == ("memory://toml", ["myapp.jobs"], ["default"])
    env = {"KUE_URL": "memory://env", "KUE_QUEUES": "a, b"}
    s = load_settings(env=env, cwd=tmp_path)
    assert (s.url, s.queues, s.source) == ("memory://env", ["a", "b"], "environment")
    s = load_settings({"url": "memory://flag", "queues": ["x"]}, env=env, cwd=tmp_path)
    assert (s.url, s.queues, s.source) == ("memory://flag", ["x"], "command line")


def test_a_backend_name_alone_picks_its_default_url(tmp_path: Path) -> None:
    assert load_settings(env={"KUE_BACKEND": "memory"}, cwd=tmp_path).url == "memory://"
    s = load_settings(env={"KUE_BACKEND": "sqlite"}, cwd=tmp_path)
    assert s.url.endswith("/kue.sqlite3")


def test_bad_files_and_urls_are_reported_with_their_source(tmp_path: Path) -> None:
    (tmp_path / "kue.toml").write_text("url = [")
    with pytest.raises(ConfigError, match=r"kue\.toml is not valid TOML"):
        load_settings(env={}, cwd=tmp_path)
    (tmp_path / "kue.toml").write_text('queues = "ok"\nimport = 3\n')
    with pytest.raises(ConfigError, match=r"import in .*kue\.toml must be a list"):
        load_settings(env={}, cwd=tmp_path)
    (tmp_path / "kue.toml").unlink()
    with pytest.raises(ConfigError, match="no scheme"):
        load_settings({"url": "just-a-hostname"}, env={}, cwd=tmp_path)


def test_passwords_are_masked() -> None:
    assert mask_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert mask_url("redis://user:pw@host/0") == "redis://user:***@host/0"
    assert mask_url("redis://host:6379") == "redis://host:6379"
