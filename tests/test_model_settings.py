"""``[model]``: several horizons, the old one-horizon key, move thresholds."""

from datetime import timedelta

import pytest

from cryptotech.config import ModelSettings, horizon_label, load_settings
from cryptotech.errors import ConfigError


def test_horizons_default_and_labels():
    m = ModelSettings()
    assert m.horizon_labels == ["15m", "1h", "4h", "24h"]
    assert m.horizon == timedelta(minutes=15)
    assert [horizon_label(td) for td in m.horizons] == m.horizon_labels
    assert m.move_thresholds == [0.02, 0.05]


def test_old_horizon_key_is_a_one_horizon_alias_and_wins(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[model]\nhorizons = ["1h", "4h"]\n')
    assert load_settings(cfg).model.horizon_labels == ["1h", "4h"]
    monkeypatch.setenv("CRYPTOTECH_MODEL__HORIZON", "30m")
    assert load_settings(cfg).model.horizon_labels == ["30m"]
    monkeypatch.delenv("CRYPTOTECH_MODEL__HORIZON")
    # what `backtest --horizon 1h` passes on top of the file
    assert load_settings(cfg, model={"horizon": "1h"}).model.horizon_labels == ["1h"]
    assert load_settings(cfg, model={"horizon": None}).model.horizon_labels == ["1h", "4h"]
    assert ModelSettings(horizon="1d").horizon_labels == ["24h"]


@pytest.mark.parametrize("body,named", [
    ('horizons = ["1h", "60m"]', "horizons must differ"),
    ('horizons = ["30s"]', "between 1m and 7d"),
    ('horizons = []', "model.horizons"),
    ('horizons = ["soon"]', "model.horizons"),
    ('move_thresholds = [0.02, 1.5]', "move threshold"),
])
def test_invalid_model_settings_name_the_key(tmp_path, body, named):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[model]\n{body}\n")
    with pytest.raises(ConfigError, match=named):
        load_settings(cfg)
