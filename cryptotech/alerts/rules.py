"""Alert rules: what the user asks to be told about, as validated pydantic models.

A rule (:class:`Regra`) is the same whether it comes from a ``[[alertas]]`` table of
``config.toml`` or from ``POST /alertas/regras``; its field names are Portuguese because users
write them. Every invalid rule is rejected with a Portuguese message (the API answers 422, the
config loader exits with one line).

Kinds (``tipo``):

* ``preco_acima`` / ``preco_abaixo``: the price crosses ``preco`` (quote currency);
* ``variacao``: the price moved more than ``percentual`` % (up or down) within ``janela``;
* ``fora_do_intervalo``: the realised price at ``alvo_em`` fell outside the interval issued
  for it (a "surprise"); ``surpresas_seguidas``: ``quantidade`` surprises in a row;
* ``tempestade``: the forecast volatility (``medida = "volatilidade"``) or the interval width
  (``"largura"``, relative to the price) is ``fator`` times its own recent level (an EWMA with
  time constant ``janela``);
* ``prob_subir`` / ``prob_cair``: the forecast probability of a rise / fall at ``horizonte`` is
  at least ``probabilidade`` (needs probabilistic forecasts; silent while they are absent);
* ``fonte_fora``: the price source unreachable, rate limited or stale for ``duracao``;
  ``motor_parado``: the engine not learning for ``duracao``.

Every rule has a cooldown (``intervalo_minimo``, event time for market rules) and hysteresis:
after it fires it re-arms only once its condition has cleared by ``rearme_pct`` percent of its
threshold (a price hovering at a threshold gives one alert, not fifty).
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Tipo = Literal["preco_acima", "preco_abaixo", "variacao", "fora_do_intervalo",
               "surpresas_seguidas", "tempestade", "prob_subir", "prob_cair", "fonte_fora",
               "motor_parado"]
TIPOS: tuple[str, ...] = Tipo.__args__  # type: ignore[attr-defined]
#: Kinds evaluated by the engine on every tick (event time); the others run on wall time.
MARKET = frozenset(TIPOS) - {"fonte_fora", "motor_parado"}
OUTAGE = frozenset({"fonte_fora", "motor_parado"})
ALL_COINS = "todas"

_NEEDS = {
    "preco_acima": ("preco",), "preco_abaixo": ("preco",), "variacao": ("percentual",),
    "surpresas_seguidas": ("quantidade",), "prob_subir": ("probabilidade",),
    "prob_cair": ("probabilidade",),
}
_FIELDS = {"preco", "percentual", "quantidade", "probabilidade", "fator", "medida", "janela",
           "horizonte", "duracao"}
_ALLOWED = {
    "preco_acima": {"preco"}, "preco_abaixo": {"preco"}, "variacao": {"percentual", "janela"},
    "fora_do_intervalo": {"horizonte"}, "surpresas_seguidas": {"quantidade", "horizonte"},
    "tempestade": {"fator", "medida", "janela", "horizonte"},
    "prob_subir": {"probabilidade", "horizonte"}, "prob_cair": {"probabilidade", "horizonte"},
    "fonte_fora": {"duracao"}, "motor_parado": {"duracao"},
}


def duracao(value: Any) -> timedelta:
    """A duration such as ``"90s"``, ``"15m"``, ``"1h"`` or ``"1d"``, with a Portuguese error.

    >>> duracao("2h").total_seconds()
    7200.0
    >>> duracao("logo")
    Traceback (most recent call last):
    ...
    ValueError: duração inválida: 'logo'; use por exemplo 90s, 15m, 1h ou 1d
    """
    from cryptotech.config import parse_duration  # here: config imports this module

    try:
        td = parse_duration(value)
    except ValueError:
        td = None
    if not isinstance(td, timedelta) or td.total_seconds() <= 0:
        raise ValueError(f"duração inválida: {value!r}; use por exemplo 90s, 15m, 1h ou 1d")
    return td


class Regra(BaseModel):
    """Uma regra de alerta (veja o README, seção Alertas)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tipo: Tipo = Field(description="O que vigiar", examples=["preco_acima"])
    moeda: str = Field(ALL_COINS, max_length=32, pattern=r"^[a-z0-9][a-z0-9_-]*$",
                       description="Símbolo da moeda, ou 'todas'", examples=["btc"])
    nome: str | None = Field(None, max_length=80, description="Nome mostrado na mensagem")
    preco: float | None = Field(None, gt=0, description="preco_acima/preco_abaixo: o preço limite")
    percentual: float | None = Field(None, gt=0, le=1000,
                                     description="variacao: mudança mínima em % (±)")
    janela: str | None = Field(None, max_length=12, description="variacao: em quanto tempo "
                               "(padrão 1h); tempestade: a memória do nível recente (padrão 24h)")
    quantidade: int | None = Field(None, ge=2, le=1000,
                                   description="surpresas_seguidas: quantas seguidas")
    fator: float | None = Field(None, gt=1, le=100,
                                description="tempestade: quantas vezes o nível recente (padrão 2)")
    medida: Literal["volatilidade", "largura"] | None = Field(
        None, description="tempestade: volatilidade prevista ou largura do intervalo (padrão)")
    probabilidade: float | None = Field(None, gt=0.5, lt=1,
                                        description="prob_subir/prob_cair: a partir de")
    horizonte: str | None = Field(None, max_length=12, pattern=r"^\d+(s|m|h|d)$",
                                  description="Horizonte da previsão (padrão: qualquer um)")
    duracao: str | None = Field(None, max_length=12,
                                description="fonte_fora/motor_parado: por quanto tempo (padrão 10m)")
    intervalo_minimo: str = Field("1h", max_length=12,
                                  description="Espera mínima entre dois alertas da regra")
    rearme_pct: float | None = Field(None, ge=0, le=100, description="Quanto (em % do limite) a "
                                     "condição precisa recuar para a regra se rearmar (padrão "
                                     "0,5 para preços, 10 para as demais)")

    @field_validator("janela", "duracao", "intervalo_minimo")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            duracao(value)
        return value

    @model_validator(mode="after")
    def _fields_for_kind(self) -> Regra:
        missing = [f for f in _NEEDS.get(self.tipo, ()) if getattr(self, f) is None]
        if missing:
            raise ValueError(f"o tipo {self.tipo} precisa de: {', '.join(missing)}")
        extra = sorted(f for f in _FIELDS - _ALLOWED[self.tipo] if getattr(self, f) is not None)
        if extra:
            raise ValueError(f"o tipo {self.tipo} não usa: {', '.join(extra)}")
        if self.tipo in OUTAGE and self.moeda != ALL_COINS:
            raise ValueError(f"o tipo {self.tipo} vale para o serviço todo: use moeda = 'todas'")
        return self

    # -- derived values (defaults per kind) ----------------------------------------------

    @cached_property
    def cooldown(self) -> float:
        return duracao(self.intervalo_minimo).total_seconds()

    @cached_property
    def window(self) -> float:
        default = "24h" if self.tipo == "tempestade" else "1h"
        return duracao(self.janela or default).total_seconds()

    @cached_property
    def outage_after(self) -> float:
        return duracao(self.duracao or "10m").total_seconds()

    @cached_property
    def rearm(self) -> float:
        """The re-arm margin as a fraction of the threshold."""
        default = 0.5 if self.tipo in ("preco_acima", "preco_abaixo") else 10.0
        return (default if self.rearme_pct is None else self.rearme_pct) / 100.0

    def applies_to(self, coin: str) -> bool:
        return self.moeda in (ALL_COINS, coin)

    def fingerprint(self) -> str:
        """What the rule watches (not its name): its stored state is kept under this."""
        body = self.model_dump(exclude={"nome"}, exclude_none=True)
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:12]

    def describe(self, coin: bool = True) -> str:
        """The rule in one Portuguese phrase (``coin=False``: without whom it watches).

        >>> Regra(tipo="variacao", moeda="btc", percentual=3, janela="1h").describe()
        'btc: variação de ±3% em 1h'
        >>> Regra(tipo="fora_do_intervalo", moeda="btc").describe()
        'btc: preço real fora do intervalo previsto'
        """
        from cryptotech.config import format_duration

        who = "todas as moedas" if self.moeda == ALL_COINS else self.moeda
        at = f" (horizonte {self.horizonte})" if self.horizonte else ""
        t = self.tipo
        if t == "preco_acima":
            what = f"preço acima de {_num(self.preco)}"
        elif t == "preco_abaixo":
            what = f"preço abaixo de {_num(self.preco)}"
        elif t == "variacao":
            span = format_duration(timedelta(seconds=self.window))
            what = f"variação de ±{_num(self.percentual)}% em {span}"
        elif t == "fora_do_intervalo":
            what = f"preço real fora do intervalo previsto{at}"
        elif t == "surpresas_seguidas":
            what = f"{self.quantidade} preços reais seguidos fora do intervalo previsto{at}"
        elif t == "tempestade":
            medida = "volatilidade prevista" if self.medida == "volatilidade" else \
                "largura do intervalo previsto"
            what = f"{medida} {_num(self.fator or 2.0)}× acima do nível recente{at}"
        elif t in ("prob_subir", "prob_cair"):
            verbo = "subir" if t == "prob_subir" else "cair"
            what = f"probabilidade de {verbo} de {_num((self.probabilidade or 0) * 100)}% ou mais{at}"
        elif t == "fonte_fora":
            return f"fonte de preços fora do ar por {format_duration(timedelta(seconds=self.outage_after))}"
        else:
            return f"motor sem aprender por {format_duration(timedelta(seconds=self.outage_after))}"
        return f"{who}: {what}" if coin else what


def _num(value: float | None) -> str:
    """A number for a sentence, Brazilian style, without needless decimals.

    >>> _num(100000.0), _num(2.5), _num(0.1234)
    ('100.000', '2,5', '0,1234')
    """
    if value is None:
        return "?"
    if value == int(value) and abs(value) >= 1:
        return f"{int(value):,}".replace(",", ".")
    digits = 2 if abs(value) >= 1 else 6
    text = f"{value:,.{digits}f}".rstrip("0").rstrip(".")
    return text.replace(",", "_").replace(".", ",").replace("_", ".")


class RegraAtiva(BaseModel):
    """A rule with where it comes from: ``config:N`` (config.toml, read-only) or ``api:N``."""

    model_config = ConfigDict(frozen=True)

    id: str
    regra: Regra
    pausada: bool = False

    @cached_property
    def key(self) -> str:
        """The key of its stored state: its id and what it watches."""
        return f"{self.id}:{self.regra.fingerprint()}"

    @property
    def origin(self) -> str:
        return self.id.split(":", 1)[0]


def config_rules(tables: list[Regra]) -> list[RegraAtiva]:
    """The ``[[alertas]]`` rules of config.toml, numbered from 1 in file order."""
    return [RegraAtiva(id=f"config:{i}", regra=r) for i, r in enumerate(tables, start=1)]
