"""Response models of the API: field names in Portuguese, documented with examples.

The class docstrings are shown to users in ``/docs`` and ``/redoc``, so they are Portuguese.

These models are the OpenAPI schema of every JSON answer and the payload of every SSE event
(so ``/prever``, ``/previsoes`` and ``/stream`` speak the same shapes). Times are aware
datetimes in the configured zone (ISO-8601 with offset in JSON); numbers that are not finite
become ``null`` (:data:`Numero`), so JSON never carries NaN or Infinity.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from cryptotech.alerts.schemas import AlertasStatus

#: Significant digits a number keeps when presented: more than any price CoinGecko gives
#: (BTC 104238.52, DOGE 0.1691234), fewer than float noise (104238.49999999993).
SIGNIFICANT_DIGITS = 10


def finite_or_none(value: float | None) -> float | None:
    """``value`` if it is a finite number, rounded to :data:`SIGNIFICANT_DIGITS` significant
    digits (not decimals: small coins keep theirs), else ``None``.

    >>> finite_or_none(1.5), finite_or_none(float("nan")), finite_or_none(float("inf"))
    (1.5, None, None)
    >>> finite_or_none(104238.49999999993), finite_or_none(0.000012345678912345)
    (104238.5, 1.234567891e-05)
    """
    if value is None or not math.isfinite(value):
        return None
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


#: A number that is ``null`` when unknown or not finite, without float noise.
Numero = Annotated[float | None, AfterValidator(finite_or_none)]


def finite_only(value: float | None) -> float | None:
    """``value`` as the source gave it if finite, else ``None`` (no rounding: a price from the
    source is at the source's own precision).

    >>> finite_only(104238.51), finite_only(float("nan"))
    (104238.51, None)
    """
    if value is None or not math.isfinite(value):
        return None
    return float(value)


#: A number from the source (a price, a volume): kept as received, ``null`` if not finite.
DaFonte = Annotated[float | None, AfterValidator(finite_only)]

EXEMPLO_FEITA = "2025-01-31T14:30:00-03:00"
EXEMPLO_ALVO = "2025-01-31T15:30:00-03:00"
EXEMPLO_QUANTIS = {"q05": 102260.1, "q10": 102710.4, "q25": 103470.9, "q50": 104250.5,
                   "q75": 105036.0, "q90": 105808.1, "q95": 106276.3}

SKILL = ("Habilidade contra a persistência ('o preço fica igual'): 1 - MAE/MAE da "
         "persistência, uma fração. Acima de 0 errou menos que a persistência (0,012 = 1,2% "
         "menos erro), abaixo de 0 errou mais; null sem resultados")


class _Modelo(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- errors --------------------------------------------------------------------------------


class ErroParametro(_Modelo):
    """Um parâmetro inválido."""

    parametro: str = Field(description="Nome do parâmetro", examples=["limite"])
    local: Literal["path", "query", "header", "body", "cookie"] = Field(
        description="Onde o parâmetro foi enviado", examples=["query"]
    )
    mensagem: str = Field(examples=["deve ser menor ou igual a 10000"])


class Erro(_Modelo):
    """Toda resposta de erro (4xx, 5xx): uma mensagem em português, nunca um rastreamento."""

    detalhe: str = Field(examples=["parâmetro inválido: limite deve ser menor ou igual a 10000"])
    erros: list[ErroParametro] | None = Field(
        None, description="Parâmetros inválidos, um por item (só em 422)"
    )


class Indisponivel(_Modelo):
    """503 de `/prever`: ainda sem previsão, por quê e quando uma é esperada."""

    detalhe: str = Field(
        examples=["btc: aquecendo; 1 preço recebido, a previsão sai a partir do segundo preço"]
    )
    motivo: Literal["sem_dados", "aquecendo", "sem_dados_na_fonte"] = Field(
        description="sem_dados: nenhum preço recebido ainda; aquecendo: preços recebidos, mas "
        "ainda não o bastante para estimar a volatilidade; sem_dados_na_fonte: a fonte não "
        "tem esta moeda (não haverá previsão enquanto isso durar)",
        examples=["aquecendo"],
    )
    precos_recebidos: int = Field(ge=0, examples=[1])
    previsao_esperada_em: datetime | None = Field(
        description="Quando a próxima tentativa deve ter uma previsão (estimativa)",
        examples=[EXEMPLO_ALVO],
    )
    tentar_novamente_em_segundos: int = Field(ge=1, examples=[60])


# -- forecasts -----------------------------------------------------------------------------


class Previsao(_Modelo):
    """Uma previsão do preço em `alvo_em` e, quando já conhecido, o que aconteceu."""

    id: int = Field(ge=1, description="Id da previsão (igual ao id do evento SSE `previsao`)",
                    examples=[4821])
    moeda: str = Field(examples=["btc"])
    feita_em: datetime = Field(description="Horário do preço em que a previsão foi feita",
                               examples=[EXEMPLO_FEITA])
    alvo_em: datetime = Field(description="Horário previsto (feita_em + horizonte)",
                              examples=[EXEMPLO_ALVO])
    preco_atual: DaFonte = Field(description="Preço quando a previsão foi feita",
                                examples=[104250.5])
    previsao: Numero = Field(description="Preço previsto para alvo_em", examples=[104310.2])
    limite_inferior: Numero = Field(description="Limite inferior do intervalo de previsão",
                                    examples=[103420.0])
    limite_superior: Numero = Field(description="Limite superior do intervalo de previsão",
                                    examples=[105190.7])
    variacao_prevista_pct: Numero = Field(
        description="Variação prevista em relação ao preço atual, em %", examples=[0.057]
    )
    modelo: str = Field(
        description="Modelo publicado (persistence = 'o preço fica igual')",
        examples=["bayes_linear"],
    )
    situacao: Literal["pendente", "realizada"] = Field(
        description="realizada quando o preço em alvo_em já é conhecido", examples=["realizada"]
    )
    preco_real: Numero = Field(None, description="Preço em alvo_em (interpolado)",
                               examples=[104101.9])
    erro: Numero = Field(None, description="previsao - preco_real", examples=[208.3])
    erro_pct: Numero = Field(None, description="erro / preco_real, em %", examples=[0.2])
    dentro_do_intervalo: bool | None = Field(
        None, description="Se o preço real caiu dentro do intervalo", examples=[True]
    )
    horizonte: str | None = Field(None, description="Horizonte da previsão (alvo_em - feita_em)",
                                  examples=["1h"])
    quantis: dict[str, Numero] | None = Field(
        None, description="Preços nos quantis da distribuição prevista: q05 = há 5% de chance "
        "de o preço em alvo_em ficar abaixo dele, q50 = a mediana, q95 = 95%",
        examples=[EXEMPLO_QUANTIS])
    prob_subir: Numero = Field(None, description="Probabilidade prevista de o preço em alvo_em "
                               "ficar acima de preco_atual (fração: 0,5 = 50%)", examples=[0.5])
    volatilidade_prevista: Numero = Field(
        None, description="Desvio padrão previsto do retorno logarítmico até alvo_em, como "
        "fração (0,012 = 1,2%): o tamanho típico do movimento no horizonte", examples=[0.012])


class Contexto(_Modelo):
    """Quão boa a previsão publicada tem sido até agora (janela móvel)."""

    resultados: int = Field(ge=0, description="Previsões já conferidas com o preço real "
                            "(na janela das métricas)", examples=[812])
    skill_vs_persistencia: Numero = Field(description=SKILL, examples=[0.012])
    mae: Numero = Field(description="MAE (erro absoluto médio) da previsão publicada, em "
                        "unidades de preço", examples=[310.4])
    mae_persistencia: Numero = Field(description="MAE de 'o preço fica igual', em unidades "
                                     "de preço", examples=[314.2])
    cobertura: Numero = Field(description="Fração dos preços reais dentro do intervalo "
                              "(0,893 = 89,3%)", examples=[0.893])
    nivel_intervalo: float = Field(description="Cobertura pretendida do intervalo",
                                   examples=[0.9])
    resumo: str = Field(examples=[
        "Em 812 resultados, a previsão publicada errou 1,2% menos que a persistência; "
        "o intervalo de 90% cobriu 89,3% dos preços reais."
    ])


class Quantil(_Modelo):
    """Um quantil da distribuição prevista do preço em `alvo_em`."""

    nivel: float = Field(description="Probabilidade de o preço ficar abaixo (0,05 = 5%)",
                         examples=[0.05])
    preco: Numero = Field(examples=[102260.1])


class Intervalo(_Modelo):
    """A faixa provável do preço em `alvo_em`, no nível configurado."""

    nivel: float = Field(description="Chance pretendida de o preço cair dentro (0,9 = 90%)",
                         examples=[0.9])
    inferior: Numero = Field(examples=[102260.1])
    superior: Numero = Field(examples=[106276.3])


class ProbMovimento(_Modelo):
    """Chance de um movimento maior que ±limiar até `alvo_em`."""

    limiar: float = Field(description="Tamanho do movimento, como fração do preço atual "
                          "(0,02 = 2%)", examples=[0.02])
    probabilidade: Numero = Field(description="Chance de o preço em alvo_em estar mais de "
                                  "limiar acima OU abaixo do preço atual (fração)",
                                  examples=[0.12])


class Distribuicao(_Modelo):
    """A distribuição prevista do preço em `alvo_em`: faixas e probabilidades."""

    quantis: list[Quantil] = Field(description="Quantis de 5% a 95%")
    intervalo: Intervalo
    prob_subir: Numero = Field(description="Chance de o preço em alvo_em ficar acima do "
                               "preço atual (fração)", examples=[0.5])
    volatilidade_prevista: Numero = Field(
        description="Desvio padrão previsto do retorno logarítmico no horizonte, como fração "
        "(0,012 = 1,2%)", examples=[0.012])
    prob_movimento: list[ProbMovimento] = Field(
        description="Para cada limiar configurado, a chance de um movimento maior que ele")
    resumo: str = Field(examples=[
        "Faixa provável em 1h: 102.260,1 a 106.276,3 USD (90%); chance de subir: 50%; "
        "volatilidade prevista: 1,2%."])
    nota: str = Field(description="Como ler o meio da faixa, honestamente", examples=[
        "O meio da faixa é 'sem mudança' (o preço atual): neste horizonte nenhum modelo "
        "superou a persistência até agora; o que a previsão traz de útil é a largura da faixa "
        "e as probabilidades."])


class PrevisaoAtual(Previsao):
    """`/prever/{moeda}`: a previsão mais recente, com a distribuição e o contexto honesto."""

    horizonte: str = Field(examples=["1h"])
    horizonte_segundos: int = Field(ge=1, examples=[3600])
    horizontes_disponiveis: list[str] = Field(
        description="Horizontes configurados (passe um em ?horizonte=)",
        examples=[["15m", "1h", "4h", "24h"]])
    nivel_intervalo: float = Field(examples=[0.9])
    moeda_cotacao: str = Field(examples=["usd"])
    distribuicao: Distribuicao
    contexto: Contexto


#: The order of ``/previsoes``: ``asc`` oldest first, ``desc`` newest first.
Ordem = Literal["asc", "desc"]


class PaginaPrevisoes(_Modelo):
    """`/previsoes/{moeda}`: uma página do histórico, da mais antiga para a mais nova (ou da
    mais nova para a mais antiga, com `ordem=desc`)."""

    moeda: str = Field(examples=["btc"])
    inicio: datetime | None = Field(examples=[EXEMPLO_FEITA])
    fim: datetime | None = Field(examples=[EXEMPLO_ALVO])
    fuso_horario: str = Field(examples=["America/Sao_Paulo"])
    horizonte: str | None = Field(None, description="O horizonte das previsões da página",
                                  examples=["1h"])
    ordem: Ordem = Field(examples=["asc"])
    limite: int = Field(ge=1, examples=[1000])
    quantidade: int = Field(ge=0, examples=[2])
    itens: list[Previsao]
    proximo_apos_id: int | None = Field(
        description="Passe como apos_id para a próxima página (ordem=asc); null se esta é a "
        "última", examples=[4822],
    )
    proximo_antes_id: int | None = Field(
        None, description="Passe como antes_id para a próxima página (ordem=desc); null se "
        "esta é a última", examples=[None],
    )
    proxima_pagina: str | None = Field(
        description="URL relativa da próxima página; null se esta é a última",
        examples=["/previsoes/btc?limite=1000&apos_id=4822"],
    )


# -- metrics -------------------------------------------------------------------------------


class Metricas(_Modelo):
    """Precisão de um previsor nos últimos resultados (janela móvel). Erros em unidades de
    preço da moeda de cotação; taxas como frações (0,9 = 90%)."""

    resultados: int = Field(ge=0, description="Previsões conferidas com o preço real na janela",
                            examples=[812])
    mae: Numero = Field(description="MAE, erro absoluto médio: a distância média entre a "
                        "previsão e o preço real, em unidades de preço (ex.: USD)",
                        examples=[310.4])
    rmse: Numero = Field(description="RMSE, raiz do erro quadrático médio, em unidades de "
                         "preço; pesa mais os erros grandes que o MAE", examples=[455.0])
    mape: Numero = Field(description="MAPE, erro percentual absoluto médio, como fração do "
                         "preço real (0,003 = 0,3%)", examples=[0.003])
    r2: Numero = Field(description="R², coeficiente de determinação: 1 é perfeito, 0 é tão "
                       "bom quanto prever a média, negativo é pior (sem unidade)",
                       examples=[0.998])
    skill_vs_persistencia: Numero = Field(description=SKILL, examples=[0.012])
    acerto_direcao: Numero = Field(description="Fração das vezes em que a direção (sobe/desce) "
                                   "foi acertada (0,51 = 51%)", examples=[0.51])
    cobertura: Numero = Field(description="Fração dos preços reais que caíram dentro do "
                              "intervalo (meta: nivel_intervalo)", examples=[0.893])
    largura_media_bps: Numero = Field(description="Largura média do intervalo em pontos-base, "
                                      "relativa ao preço (bps: 100 bps = 1%)",
                                      examples=[171.2])
    escore_intervalo_bps: Numero = Field(
        None, description="Escore de intervalo (interval score), em pontos-base do preço: a "
        "largura do intervalo mais uma multa quando o preço real cai fora dele. Menor é "
        "melhor: premia faixas estreitas que ainda acertam", examples=[190.4])
    skill_escore_intervalo: Numero = Field(
        None, description="1 - escore/escore da referência EWMA-Gaussiana (fração): acima de "
        "0, faixas melhores que a referência", examples=[0.03])
    pinball_medio_bps: Numero = Field(
        None, description="Perda pinball média dos quantis 5%..95%, em pontos-base do preço "
        "(uma estimativa do CRPS): mede a distribuição inteira. Menor é melhor",
        examples=[31.5])
    skill_pinball: Numero = Field(None, description="1 - pinball/pinball da referência "
                                  "EWMA-Gaussiana (fração)", examples=[0.02])
    brier: Numero = Field(None, description="Escore de Brier da chance de subir: média de "
                          "(probabilidade - 1 se subiu, senão 0)². 0,25 é o de quem sempre diz "
                          "50%; menor é melhor", examples=[0.249])
    skill_brier: Numero = Field(None, description="1 - brier/brier da referência (que diz "
                                "sempre 50%), fração", examples=[0.004])
    logverossimilhanca_vol: Numero = Field(
        None, description="Log-verossimilhança média do retorno realizado sob a volatilidade "
        "prevista (em nats; maior é melhor): mede se a volatilidade prevista acertou o tamanho "
        "dos movimentos", examples=[3.1])
    cobertura_quantis: dict[str, Numero] | None = Field(
        None, description="Para cada quantil, a fração dos preços reais abaixo dele: bem "
        "calibrado quando q05 ≈ 0,05 ... q95 ≈ 0,95",
        examples=[{"q05": 0.052, "q50": 0.497, "q95": 0.948}])


class MetricasHorizonte(_Modelo):
    """As métricas de um horizonte: publicada, persistência, referência EWMA e candidatos."""

    horizonte: str = Field(examples=["4h"])
    modelo_em_uso: str = Field(examples=["persistence"])
    publicado: Metricas
    ewma: Metricas | None = None
    persistencia: Metricas | None = Field(None, description="Só em GET /metricas")
    candidatos: dict[str, Metricas] | None = Field(None, description="Só em GET /metricas")


class MetricasMoeda(_Modelo):
    """`/metricas/{moeda}`: a previsão publicada, a persistência e cada candidato."""

    moeda: str = Field(examples=["btc"])
    modelo_em_uso: str = Field(examples=["persistence"])
    horizonte: str = Field(examples=["1h"])
    nivel_intervalo: float = Field(examples=[0.9])
    janela: int = Field(description="Quantos resultados recentes entram nas métricas",
                        examples=[1000])
    publicado: Metricas
    persistencia: Metricas
    candidatos: dict[str, Metricas] = Field(description="Cada modelo candidato, pelo nome")
    ewma: Metricas | None = Field(
        None, description="A referência para a distribuição: faixa Gaussiana com a "
        "volatilidade EWMA (RiskMetrics, λ = 0,94) em torno do preço atual, chance de subir 50%")
    horizontes_disponiveis: list[str] = Field(
        default_factory=list, description="Horizontes configurados (passe um em ?horizonte=)",
        examples=[["15m", "1h", "4h", "24h"]])
    por_horizonte: dict[str, MetricasHorizonte] | None = Field(
        None, description="As métricas de cada horizonte configurado (nos eventos SSE, só a "
        "previsão publicada e a referência ewma: o skill contra a persistência já está em "
        "publicado)")
    explicacao: str | None = Field(None, description="O que cada métrica quer dizer, em "
                                   "português simples (só em GET /metricas: os eventos SSE "
                                   "não repetem este texto)", examples=[
        "skill_vs_persistencia (habilidade contra a persistência) = 1 - MAE/MAE da "
        "persistência: acima de 0 errou menos que 'o preço fica igual'. Um modelo só é "
        "publicado quando erra menos que a persistência."
    ])


# -- coins and status ----------------------------------------------------------------------


class MoedaInfo(_Modelo):
    """Uma moeda: símbolo e id na CoinGecko."""

    simbolo: str = Field(examples=["btc"])
    id_coingecko: str = Field(examples=["bitcoin"])


class Moedas(_Modelo):
    """`/moedas`: as moedas configuradas."""

    moedas: list[str] = Field(examples=[["btc", "eth", "ada", "sol", "xrp", "doge"]])
    detalhes: list[MoedaInfo]
    moeda_cotacao: str = Field(examples=["usd"])


class FonteStatus(_Modelo):
    """Saúde da fonte de preços."""

    tipo: str = Field(description="Tipo da fonte (código)", examples=["rest"])
    estado: str = Field(description="Código do estado: starting (iniciando), live (ao vivo), "
                        "stale (sem preços novos), unreachable (inacessível), rate_limited "
                        "(limite de consultas), auth_error (chave recusada) ou "
                        "budget_exhausted (créditos do mês esgotados)", examples=["live"])
    mensagem: str = Field(description="O estado da fonte em uma frase",
                          examples=["preços chegando"])
    ultimo_sucesso_em: datetime | None = Field(examples=[EXEMPLO_FEITA])
    ultimo_preco_em: dict[str, datetime | None] = Field(examples=[{"btc": EXEMPLO_FEITA}])
    consultas: int = Field(ge=0, examples=[1440])
    erros: int = Field(ge=0, examples=[2])
    rejeitados: dict[str, int] = Field(description="Valores inválidos recusados, por motivo "
                                       "(nao_e_numero, salto_absurdo, horario_invalido, ...)",
                                       examples=[{"nao_e_numero": 1}])
    duplicados: int = Field(ge=0, examples=[700])
    creditos_usados_mes: int = Field(ge=0, examples=[1440])
    orcamento_creditos: int = Field(ge=0, description="0 = sem orçamento", examples=[10000])
    proxima_consulta_em: datetime | None = Field(examples=[EXEMPLO_ALVO])


class MoedaStatus(_Modelo):
    """Estado do aprendiz de uma moeda."""

    ultimo_preco_em: datetime | None = Field(examples=[EXEMPLO_FEITA])
    modelo_em_uso: str = Field(examples=["persistence"])
    precos_vistos: int = Field(ge=0, examples=[8640])
    rotulos_pendentes: int = Field(ge=0, description="Previsões esperando o preço real",
                                   examples=[12])
    ignorados: dict[str, int] = Field(description="Preços não aprendidos, por motivo "
                                      "(duplicado, aquecendo, fora_de_ordem, ...)",
                                      examples=[{"duplicado": 3, "aquecendo": 1}])
    recuperacao: str | None = Field(examples=["checkpoint 12; 3 preços guardados reprocessados"])
    sem_dados: str | None = Field(
        default=None, description="Por que a fonte não tem preços desta moeda (null: tem)",
        examples=["sem dados na fonte: o CoinGecko não devolve o id 'notacoin'"])


class Banco(_Modelo):
    """Linhas guardadas no banco, por tabela."""

    ticks: int = Field(ge=0, examples=[51840])
    previsoes: int = Field(ge=0, examples=[51820])
    resultados: int = Field(ge=0, examples=[51700])
    eventos: int = Field(ge=0, examples=[155000])
    checkpoints: int = Field(ge=0, examples=[18])


class TarefaMotor(_Modelo):
    """Uma tarefa de longa duração do motor (fonte, checkpoints, pulsação...)."""

    estado: Literal["ok", "reiniciando", "falhou"] = Field(
        description="ok: funcionando; reiniciando: parou por um erro e será reiniciada; "
        "falhou: vários erros seguidos (continua tentando)", examples=["ok"])
    erros: int = Field(ge=0, description="Erros desde o início", examples=[0])
    ultimo_erro: str | None = Field(examples=[None])
    erro_em: datetime | None = Field(description="Quando foi o último erro (UTC)",
                                     examples=[None])


class Motor(_Modelo):
    """Se o motor está aprendendo, e a saúde de cada tarefa."""

    aprendendo: bool = Field(examples=[True])
    motivo: str = Field(description="aprendendo, ou por que não", examples=["aprendendo"])
    tarefas: dict[str, TarefaMotor]


class Saude(_Modelo):
    """`/saude`: 200 enquanto o motor aprende, 503 caso contrário."""

    aprendendo: bool = Field(examples=[True])
    detalhe: str = Field(examples=["aprendendo"])
    ticks_processados: int = Field(ge=0, examples=[51840])


class Status(_Modelo):
    """`/status`: pulsação do serviço."""

    situacao: Literal["ok", "atencao"] = Field(
        description="ok quando o motor aprende e toda moeda tem preços; atencao caso contrário",
        examples=["ok"],
    )
    agora: datetime = Field(examples=[EXEMPLO_FEITA])
    versao: str = Field(examples=["0.1.0"])
    versao_river: str = Field(examples=["0.22.0"])
    iniciado_em: datetime = Field(examples=[EXEMPLO_FEITA])
    fuso_horario: str = Field(examples=["America/Sao_Paulo"])
    horizonte: str = Field(examples=["1h"])
    fonte: FonteStatus | None = Field(description="null quando o motor roda sem fonte")
    moedas: dict[str, MoedaStatus]
    ticks_processados: int = Field(ge=0, examples=[51840])
    ignorados: dict[str, int] = Field(description="Preços ignorados pelo motor, por motivo",
                                      examples=[{"moeda_desconhecida": 0, "ja_guardado": 0}])
    erros_banco: int = Field(ge=0, examples=[0])
    assinantes: int = Field(ge=0, description="Conexões abertas em /stream", examples=[3])
    assinantes_max: int = Field(ge=1, examples=[1000])
    assinantes_removidos: int = Field(ge=0, description="Assinantes lentos desconectados",
                                      examples=[0])
    ultimo_evento_id: int = Field(ge=0, examples=[155000])
    banco: Banco
    motor: Motor
    alertas: AlertasStatus | None = Field(default=None,
                                          description="Regras, disparos e entregas")


__all__ = [
    "Banco", "Contexto", "Erro", "ErroParametro", "FonteStatus", "Indisponivel", "MetricasMoeda",
    "Metricas", "MoedaInfo", "MoedaStatus", "Moedas", "Motor", "Numero", "PaginaPrevisoes",
    "Previsao", "PrevisaoAtual", "Saude", "Status", "TarefaMotor", "finite_or_none",
]


# -- SSE payloads (documented in /docs under GET /stream) --------------------------------------


class Preco(_Modelo):
    """Evento SSE `tick`: um preço recebido e guardado."""

    moeda: str = Field(examples=["btc"])
    horario: datetime = Field(description="Horário do preço na fonte", examples=[EXEMPLO_FEITA])
    preco: DaFonte = Field(examples=[104250.5])
    valor_mercado: DaFonte = Field(examples=[2.06e12])
    volume_24h: DaFonte = Field(examples=[3.1e10])
    variacao_24h_pct: DaFonte = Field(examples=[1.8])


class StatusResumo(_Modelo):
    """Evento SSE `status`: pulsação curta (a completa é `GET /status`)."""

    agora: datetime = Field(examples=[EXEMPLO_FEITA])
    fonte: str | None = Field(description="Código do estado da fonte (veja FonteStatus)",
                              examples=["live"])
    mensagem: str | None = Field(examples=["preços chegando"])
    ultimo_preco_em: dict[str, datetime | None] = Field(examples=[{"btc": EXEMPLO_FEITA}])
    modelo_em_uso: dict[str, str] = Field(examples=[{"btc": "persistence"}])
    ticks_processados: int = Field(ge=0, examples=[51840])
    assinantes: int = Field(ge=0, examples=[3])
    ultimo_evento_id: int = Field(ge=0, examples=[155000])


class EstadoMoeda(_Modelo):
    """Previsão atual (null enquanto aquece) e métricas de uma moeda."""

    previsao: PrevisaoAtual | None
    metricas: MetricasMoeda


class Reset(_Modelo):
    """Evento SSE `reset`: o id pedido não está mais guardado; eis o estado atual."""

    motivo: str = Field(examples=["o id 12 é anterior ao histórico guardado (a partir de 5000)"])
    ultimo_id: int = Field(ge=0, examples=[155000])
    moedas: dict[str, EstadoMoeda]


class Aviso(_Modelo):
    """Eventos SSE `adeus` (servidor encerrando) e `removido` (assinante lento demais)."""

    mensagem: str = Field(examples=["servidor encerrando; reconecte em alguns segundos"])
    reconectar: bool = Field(examples=[True])
