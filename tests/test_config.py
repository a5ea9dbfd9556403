import subprocess
import sys
from datetime import timedelta

import pytest

from cryptotech.config import load_settings
from cryptotech.errors import ConfigError


def test_defaults_match_the_documented_config_toml(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # no config.toml here: built-in defaults
    builtin = load_settings()
    from pathlib import Path

    documented = load_settings(Path(__file__).parents[1] / "config.toml")
    assert builtin.model_dump() == documented.model_dump()
    assert documented.coins == {"btc": "bitcoin", "eth": "ethereum", "ada": "cardano",
                                "sol": "solana", "xrp": "ripple", "doge": "dogecoin"}
    assert documented.model.horizon_labels == ["15m", "1h", "4h", "24h"]
    assert documented.model.horizon == timedelta(minutes=15)  # the first, shown by default
    assert documented.timezone == "America/Sao_Paulo"
    assert documented.api.host == "127.0.0.1"


def test_environment_overrides_file(monkeypatch, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('vs_currency = "eur"\n[model]\nhorizon = "4h"\n')
    monkeypatch.setenv("CRYPTOTECH_MODEL__HORIZON", "15m")
    monkeypatch.setenv("CRYPTOTECH_COINS", "btc=bitcoin, sol=solana")
    s = load_settings(cfg)
    assert s.vs_currency == "eur"
    assert s.model.horizon == timedelta(minutes=15)
    assert s.coins == {"btc": "bitcoin", "sol": "solana"}


def test_api_key_comes_from_environment_and_is_not_printed(monkeypatch):
    monkeypatch.setenv("CRYPTOTECH_COINGECKO_API_KEY", "CG-planted-secret-123")
    s = load_settings()
    assert s.coingecko_api_key.get_secret_value() == "CG-planted-secret-123"
    assert "planted" not in repr(s) and "planted" not in str(s.model_dump())


@pytest.mark.parametrize(
    "key,value,named",
    [
        ("CRYPTOTECH_MODEL__HORIZON", "soon", "model.horizon"),
        ("CRYPTOTECH_MODEL__INTERVAL_LEVEL", "1.5", "model.interval_level"),
        ("CRYPTOTECH_API__PORT", "99999", "api.port"),
        ("CRYPTOTECH_TIMEZONE", "Mars/Olympus", "timezone"),
        ("CRYPTOTECH_COINS", "btc", "coins"),
    ],
)
def test_invalid_value_is_one_line_naming_the_key_and_exit_2(tmp_path, key, value, named):
    env = {"PATH": "", key: value}
    import os

    env = {**os.environ, key: value}
    proc = subprocess.run(
        [sys.executable, "-m", "cryptotech.cli", "backtest", "x.csv"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert named in lines[0] and "Traceback" not in proc.stderr


def test_unknown_key_in_file_is_rejected(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nhorizn = '1h'\n")
    with pytest.raises(ConfigError, match="model.horizn"):
        load_settings(cfg)


def test_errors_name_the_flag_the_variable_or_the_file_key(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as flag:
        load_settings(flags={"api.port": "--port"}, api={"port": 99999})
    assert "'api.port' (flag --port)" in str(flag.value)
    cfg = tmp_path / "c.toml"
    cfg.write_text("[model]\nhorizon = \"0m\"\n")
    with pytest.raises(ConfigError) as file:
        load_settings(cfg)
    assert f"(file {cfg}, key [model] horizon)" in str(file.value)
    monkeypatch.setenv("CRYPTOTECH_MODEL__HORIZON", "banana")
    with pytest.raises(ConfigError) as env:
        load_settings(cfg)
    message = str(env.value)
    assert "(environment CRYPTOTECH_MODEL__HORIZON)" in message and message.count("banana") == 1
    assert "Value error" not in message and "\n" not in message
    # a whole section given as JSON in one variable is that variable's fault
    monkeypatch.delenv("CRYPTOTECH_MODEL__HORIZON")
    monkeypatch.setenv("CRYPTOTECH_MODEL", '{"interval_level": 2}')
    with pytest.raises(ConfigError, match=r"\(environment CRYPTOTECH_MODEL\)"):
        load_settings()
