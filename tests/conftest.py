"""Shared test helpers: paths of the real-data fixtures and synthetic tick streams."""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cryptotech.config import ModelSettings
from cryptotech.domain import Tick

FIXTURES = Path(__file__).parent / "fixtures"
START = datetime(2025, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def model_settings(**changes) -> ModelSettings:
    """Fast model settings for tests (linear candidate only unless asked)."""
    base = {"candidates": ["bayes_linear"]}
    base.update(changes)
    return ModelSettings(**base)


def random_walk(n: int, coin: str = "btc", step: timedelta = timedelta(minutes=5),
                sigma: float = 0.002, seed: int = 1, price: float = 100.0,
                drift_fn=None) -> list[Tick]:
    """Geometric random walk with known per-step log-return noise ``sigma``."""
    rng = random.Random(seed)
    ticks, lp = [], math.log(price)
    for i in range(n):
        ticks.append(Tick(coin=coin, ts=START + i * step, price=math.exp(lp), volume_24h=1e6))
        r = rng.gauss(0.0, sigma)
        if drift_fn is not None:
            r += drift_fn(ticks)
        lp += r
    return ticks
