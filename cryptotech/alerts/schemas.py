"""The alerts' API models (Portuguese, shown in ``/docs``): an alert, a page, a rule, status."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cryptotech.alerts.rules import Regra


class _Modelo(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PrevisaoAlerta(_Modelo):
    """A previsão citada num alerta (a mais recente da moeda, ou a que foi conferida)."""

    horizonte: str = Field(examples=["1h"])
    feita_em: datetime
    alvo_em: datetime
    preco_atual: float
    previsao: float
    limite_inferior: float
    limite_superior: float
    prob_subir: float | None = None
    volatilidade: float | None = None
    preco_real: float | None = Field(None, description="Só na previsão conferida")


class Alerta(_Modelo):
    """Evento SSE `alerta` e item de `GET /alertas`: uma regra que disparou."""

    id: int = Field(description="Id do evento (o mesmo do /stream)", examples=[1234])
    moeda: str | None = Field(description="null nos alertas do serviço (fonte, motor)",
                              examples=["btc"])
    horario: datetime = Field(description="Quando disparou (horário do preço que o causou)")
    regra_id: str = Field(examples=["config:1"])
    regra: str = Field(description="Nome da regra", examples=["BTC acima de 100 mil"])
    regra_descricao: str = Field(examples=["btc: preço acima de 100.000"])
    tipo: str = Field(examples=["preco_acima"])
    mensagem: str = Field(examples=["preço acima de US$ 100.000: US$ 100.250"])
    preco: float | None = None
    valor: float | None = Field(None, description="O valor medido que disparou a regra")
    limite: float | None = Field(None, description="O limite da regra")
    previsao: PrevisaoAlerta | None = Field(None, description="A previsão mais recente da moeda")
    previsao_conferida: PrevisaoAlerta | None = Field(
        None, description="fora_do_intervalo/surpresas_seguidas: a previsão feita para agora")


class PaginaAlertas(_Modelo):
    """`GET /alertas`: alertas disparados, do mais novo para o mais antigo."""

    moeda: str | None
    quantidade: int
    itens: list[Alerta]


class RegraInfo(_Modelo):
    """Uma regra com sua origem: config.toml (somente leitura) ou a API."""

    id: str = Field(examples=["api:3"])
    origem: Literal["config", "api"]
    pausada: bool
    descricao: str
    regra: Regra


class ListaRegras(_Modelo):
    """`GET /alertas/regras`."""

    escrita_habilitada: bool = Field(description="true quando CRYPTOTECH_ALERTAS_TOKEN está "
                                     "definido: criar, pausar e apagar com o token")
    regras: list[RegraInfo]


class Pausa(_Modelo):
    """Corpo de `PATCH /alertas/regras/{id}`."""

    pausada: bool


class EntregaInfo(_Modelo):
    alerta: int
    canal: str
    em: datetime
    resultado: str = Field(examples=["enviado"])
    motivo: str | None = None


class AlertasStatus(_Modelo):
    """Bloco `alertas` de `/status`: regras, disparos e entregas externas."""

    regras: int
    regras_pausadas: int
    canais: list[str] = Field(description="Canais externos (apprise), com segredos mascarados")
    disparados: int
    fila: dict[str, int] = Field(description="Linhas da fila de envio por estado")
    entregas: dict[str, int] = Field(description="Tentativas registradas por resultado")
    ultimas_entregas: list[EntregaInfo]


def present_alert(data: Mapping[str, Any], event_id: int | None, time: Any) -> dict[str, Any]:
    """Stored alert data (English keys, UTC seconds) as an :class:`Alerta` JSON dict."""

    def forecast(f: dict[str, Any] | None) -> PrevisaoAlerta | None:
        if not f:
            return None
        return PrevisaoAlerta(**{"horizonte": f["horizon"], "feita_em": time(f["made_at"]),
                "alvo_em": time(f["target_at"]), "preco_atual": f["price"],
                "previsao": f["forecast"], "limite_inferior": f["lower"],
                "limite_superior": f["upper"], "prob_subir": f.get("p_up"),
                "volatilidade": f.get("vol"), "preco_real": f.get("actual")})

    return Alerta(
        id=data.get("id") or event_id or 0, moeda=data.get("coin"), horario=time(data["ts"]),
        regra_id=data["rule_id"], regra=data["name"], regra_descricao=data["rule_text"],
        tipo=data["tipo"], mensagem=data["text"], preco=data.get("price"),
        valor=data.get("value"), limite=data.get("threshold"),
        previsao=forecast(data.get("forecast")), previsao_conferida=forecast(data.get("issued")),
    ).model_dump(mode="json")
