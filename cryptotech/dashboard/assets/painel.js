/*
 * CryptoTech · painel ao vivo (loaded by Dash from the assets folder).
 *
 * 1. Stream. One EventSource on /stream, opened when the page starts, after the newest event
 *    id stored when the page was served (painel-config.ultimo_id): the server replays anything
 *    stored after it, then sends live events. The browser resends Last-Event-ID on its own
 *    reconnects (server restart, "adeus", "removido"), waiting the server's `retry:` delay; if
 *    it gives up (an HTTP error such as 503 while the server stops), a new EventSource is
 *    opened here with ?ultimo_id=<last id received>.
 * 2. Charts. Each trace says in trace.meta which event feeds it ({evento, moeda, x, y, ...},
 *    see figures.py). The history a server callback returns with a figure (painel-base*) and
 *    every live event go through the same `aplicar`: a point is appended with
 *    Plotly.extendTraces only if its x is newer than the trace's last x (a replayed or
 *    repeated event never duplicates a point), and points older than layout.meta.janela_ms
 *    before the newest leave the chart. Live events are kept for a while (`recentes`) and
 *    replayed onto a figure the server draws later (coin change), so nothing falls between.
 *    Redraws are coalesced: a round over the charts at most every INTERVALO_GRAFICOS ms.
 * 3. Cards and banner. The latest metrics, price, forecast and source state are handed to
 *    small Dash stores with dash_clientside.set_props (at most every INTERVALO_PAINEL ms); the
 *    clientside callbacks below (namespace "painel") draw them.
 *
 * window.cryptotechPainel exposes the state for tests and the latency benchmark: `medidas`
 * holds, for each live tick drawn, when it arrived and when its extendTraces finished.
 */
(function () {
  "use strict";

  var GRAFICOS = ["grafico-preco", "grafico-variacao", "grafico-evolucao", "grafico-comparador"];
  var TIPOS = ["tick", "previsao", "resultado", "metricas", "status", "reset", "adeus",
    "removido"];
  var INTERVALO_GRAFICOS = 100;
  var INTERVALO_PAINEL = 400;
  var MAX_RECENTES = 20000;
  var MAX_MEDIDAS = 20000;
  var ESPERA_FIGURA_MS = 20000;

  var e = {
    config: null,
    es: null,
    ultimoId: null,
    conexao: "conectando",
    religar: null,
    recentes: [],
    pendentes: {},
    emRodada: false,
    agendado: null,
    ultimoDesenho: 0,
    painelAgendado: null,
    ultimoPainel: 0,
    moeda: null,
    metricas: null,
    metricasNovas: false,
    atual: {preco: null, previsao: null},
    atualNovo: false,
    fonte: null,
    atualizadoEm: null,
    bases: {},
    preenchidas: {},
    medidas: [],
    eventos: 0,
    reconexoes: 0
  };

  GRAFICOS.forEach(function (id) { e.pendentes[id] = []; });

  function agora() { return performance.timeOrigin + performance.now(); }

  function pct(valor, base) {
    return (typeof valor === "number" && typeof base === "number" && base !== 0)
      ? (valor / base - 1) * 100 : null;
  }

  var DERIVADOS = {
    variacao_real_pct: function (d) { return pct(d.preco_real, d.preco_atual); },
    limite_inferior_pct: function (d) { return pct(d.limite_inferior, d.preco_atual); },
    limite_superior_pct: function (d) { return pct(d.limite_superior, d.preco_atual); }
  };
  var FILTROS = {
    fora_do_intervalo: function (d) { return d.dentro_do_intervalo === false; }
  };

  function valor(campo, d) { return DERIVADOS[campo] ? DERIVADOS[campo](d) : d[campo]; }

  function setProps(id, props) {
    var dc = window.dash_clientside;
    if (dc && dc.set_props) { dc.set_props(id, props); }
  }

  /* -- stream ------------------------------------------------------------------------------ */

  function mudarConexao(valorNovo) {
    if (e.conexao !== valorNovo) { e.conexao = valorNovo; agendarPainel(); }
  }

  function conectar() {
    e.religar = null;
    var url = e.config.stream + (e.ultimoId !== null ? "?ultimo_id=" + e.ultimoId : "");
    var es = new EventSource(url);
    e.es = es;
    es.onopen = function () { mudarConexao("aberta"); };
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) {
        es.close();
        if (e.es === es) { e.es = null; }
        if (e.religar === null) {
          e.reconexoes += 1;
          e.religar = setTimeout(conectar, e.config.retry_ms);
        }
      }
      mudarConexao("reconectando");
    };
    TIPOS.forEach(function (tipo) {
      es.addEventListener(tipo, function (ev) { receber(tipo, ev); });
    });
  }

  function receber(tipo, ev) {
    var dados;
    try { dados = JSON.parse(ev.data); } catch (erro) { return; }
    if (ev.lastEventId) { e.ultimoId = Number(ev.lastEventId); }
    e.eventos += 1;
    e.atualizadoEm = Date.now();
    if (tipo === "tick" || tipo === "previsao" || tipo === "resultado") {
      var item = {tipo: tipo, dados: dados, chegada: agora()};
      e.recentes.push(item);
      if (e.recentes.length > MAX_RECENTES * 1.25) {
        e.recentes.splice(0, e.recentes.length - MAX_RECENTES);
      }
      GRAFICOS.forEach(function (id) { e.pendentes[id].push(item); });
      agendarGraficos();
      if (dados.moeda === e.moeda && tipo !== "resultado") {
        e.atual[tipo === "tick" ? "preco" : "previsao"] = dados;
        e.atualNovo = true;
      }
    } else if (tipo === "metricas") {
      if (dados.moeda === e.moeda) { e.metricas = dados; e.metricasNovas = true; }
    } else if (tipo === "status") {
      e.fonte = dados;
    } else if (tipo === "reset") {
      recarregar();
    } else if (tipo === "adeus" || tipo === "removido") {
      mudarConexao("reconectando");
      agendarPainel();
      return;
    }
    mudarConexao("aberta");
    agendarPainel();
  }

  /* The server could not resume after our last id ("reset"): read the history again. */
  function recarregar() {
    e.recentes = [];
    GRAFICOS.forEach(function (id) { e.pendentes[id] = []; });
    e.preenchidas = {};
    setProps("painel-recarga", {data: Date.now()});
  }

  /* -- charts ------------------------------------------------------------------------------ */

  function graficoDom(id) {
    var el = document.getElementById(id);
    return el ? el.querySelector(".js-plotly-plot") : null;
  }

  function versaoDe(gd) {
    return gd && gd.layout && gd.layout.meta ? gd.layout.meta.versao : undefined;
  }

  function ultimoX(traco) {
    var xs = traco.x;
    return xs && xs.length ? Date.parse(xs[xs.length - 1]) : -Infinity;
  }

  /* how many x (ISO texts, increasing) are older than `corte` (ms) */
  function contarAntes(xs, corte) {
    if (!xs || !xs.length || !isFinite(corte)) { return 0; }
    var lo = 0, hi = xs.length;
    while (lo < hi) {
      var meio = (lo + hi) >> 1;
      if (Date.parse(xs[meio]) < corte) { lo = meio + 1; } else { hi = meio; }
    }
    return lo;
  }

  /*
   * Append the items' points to the graph's traces (see the header). Returns a promise that
   * resolves once Plotly has redrawn, or null when nothing changed.
   */
  function aplicar(id, gd, itens) {
    var tracos = gd.data || [];
    var janela = ((gd.layout || {}).meta || {}).janela_ms;
    var ultimos = tracos.map(ultimoX);
    var novos = tracos.map(function () { return null; });
    var medir = [];
    itens.forEach(function (item) {
      var d = item.dados;
      for (var i = 0; i < tracos.length; i++) {
        var m = tracos[i].meta;
        if (!m || m.evento !== item.tipo || m.moeda !== d.moeda) { continue; }
        if (m.filtro && !(FILTROS[m.filtro] && FILTROS[m.filtro](d))) { continue; }
        var xs = d[m.x];
        var x = typeof xs === "string" ? Date.parse(xs) : NaN;
        if (!(x > ultimos[i])) { continue; }
        var y = valor(m.y, d);
        if (typeof y !== "number" || !isFinite(y)) { continue; }
        ultimos[i] = x;
        var n = novos[i] || (novos[i] = {x: [], y: [], cor: []});
        n.x.push(xs);
        n.y.push(y);
        if (m.cor) { n.cor.push(y >= 0 ? m.cor[0] : m.cor[1]); }
        if (item.tipo === "tick" && item.chegada) { medir.push(item); }
      }
    });
    var maisNovo = Math.max.apply(null, ultimos);
    var corte = janela && isFinite(maisNovo) ? maisNovo - janela : -Infinity;
    var grupos = {};
    var renormalizar = [];
    tracos.forEach(function (tr, i) {
      var m = tr.meta;
      if (!m || !Array.isArray(tr.x)) { return; }
      var n = novos[i] || {x: [], y: [], cor: []};
      var existentes = tr.x.length;
      var cortar = contarAntes(tr.x, corte);
      if (cortar === existentes) { cortar += contarAntes(n.x, corte); }
      if (!n.x.length && !cortar) { return; }
      var manter = existentes + n.x.length - cortar;
      var chave = m.cor ? "cor" : (m.normalizar ? "normalizar" : "xy");
      var g = grupos[chave] || (grupos[chave] = {indices: [], x: [], y: [], extra: [], max: []});
      g.indices.push(i);
      g.x.push(n.x);
      g.max.push(manter);
      if (m.normalizar) {
        var brutos = tr.customdata || [];
        var base = cortar < existentes ? brutos[cortar] : n.y[cortar - existentes];
        g.y.push(n.y.map(function (p) { return (p / base - 1) * 100; }));
        g.extra.push(n.y);
        if (existentes && brutos[0] !== base) { renormalizar.push(i); }
      } else {
        g.y.push(n.y);
        if (m.cor) { g.extra.push(n.cor); }
      }
    });
    var chaves = Object.keys(grupos);
    if (!chaves.length) { return null; }
    var promessas = chaves.map(function (chave) {
      var g = grupos[chave];
      var extra = {cor: "marker.color", normalizar: "customdata"}[chave];
      var dados = {x: g.x, y: g.y};
      var limites = {x: g.max, y: g.max};
      if (extra) { dados[extra] = g.extra; limites[extra] = g.max; }
      return window.Plotly.extendTraces(gd, dados, g.indices, limites);
    });
    return Promise.all(promessas).then(function () {
      var feito = agora();
      if (gd.layout.meta && gd.layout.meta.espera) {  // the first points: show the axes
        window.Plotly.relayout(gd, {annotations: [], "xaxis.visible": true,
          "yaxis.visible": true, "meta.espera": false});
      }
      medir.forEach(function (item) {
        e.medidas.push({grafico: id, moeda: item.dados.moeda,
          horario: item.dados.horario, chegada: item.chegada, desenhado: feito});
      });
      if (e.medidas.length > MAX_MEDIDAS * 1.25) {
        e.medidas.splice(0, e.medidas.length - MAX_MEDIDAS);
      }
      if (renormalizar.length) {
        var ys = renormalizar.map(function (i) {
          var brutos = gd.data[i].customdata;
          return brutos.map(function (p) { return (p / brutos[0] - 1) * 100; });
        });
        return window.Plotly.restyle(gd, {y: ys}, renormalizar);
      }
      return null;
    });
  }

  /* Fill a figure the server just drew: its history, then the live events kept meanwhile. */
  function preencher(id, gd) {
    var versao = versaoDe(gd);
    var base = e.bases[versao];
    if (!base) { return false; }
    var itens = [];
    ["tick", "previsao", "resultado"].forEach(function (tipo) {
      (base.historico[tipo] || []).forEach(function (d) { itens.push({tipo: tipo, dados: d}); });
    });
    e.preenchidas[id] = versao;
    aplicar(id, gd, itens.concat(e.recentes));
    return true;
  }

  /*
   * A drawing round: one chart per task, the price chart first, so the browser paints each
   * chart as soon as it is redrawn rather than after all of them. Each chart takes every event
   * that arrived for it so far, so a slow redraw makes the next batch larger, never a queue.
   * A round starts at most every INTERVALO_GRAFICOS ms, and never while one is running.
   */
  function rodada() {
    e.agendado = null;
    e.ultimoDesenho = agora();
    e.emRodada = true;
    var i = 0;
    function passo() {
      var id = GRAFICOS[i++];
      var itens = e.pendentes[id];
      e.pendentes[id] = [];
      var gd = graficoDom(id);
      if (window.Plotly && gd && gd.data && versaoDe(gd) !== undefined) {
        if (e.preenchidas[id] !== versaoDe(gd)) { preencher(id, gd); }
        else if (itens.length) { aplicar(id, gd, itens); }
      }
      if (i < GRAFICOS.length) { setTimeout(passo, 0); return; }
      e.emRodada = false;
      if (GRAFICOS.some(function (g) { return e.pendentes[g].length; })) { agendarGraficos(); }
    }
    passo();
  }

  function agendarGraficos() {
    if (e.agendado !== null || e.emRodada) { return; }
    var espera = Math.max(0, e.ultimoDesenho + INTERVALO_GRAFICOS - agora());
    e.agendado = setTimeout(rodada, espera);
  }

  /*
   * After a server callback: wait (bounded) until Plotly shows the new figures (the graph
   * component loads Plotly and draws asynchronously), then fill each one once.
   */
  function aguardarFigura(base) {
    var limite = agora() + ESPERA_FIGURA_MS;
    function passo() {
      var faltam = base.graficos.filter(function (id) {
        if (e.preenchidas[id] === base.versao) { return false; }
        var gd = graficoDom(id);
        return !(gd && window.Plotly && versaoDe(gd) === base.versao && preencher(id, gd));
      });
      if (faltam.length && agora() < limite && e.bases[base.versao]) {
        requestAnimationFrame(passo);
      }
    }
    requestAnimationFrame(passo);
  }

  /* -- cards and banner -------------------------------------------------------------------- */

  function agendarPainel() {
    if (e.painelAgendado !== null) { return; }
    var espera = Math.max(0, e.ultimoPainel + INTERVALO_PAINEL - agora());
    e.painelAgendado = setTimeout(atualizarPainel, espera);
  }

  function atualizarPainel() {
    e.painelAgendado = null;
    e.ultimoPainel = agora();
    setProps("painel-vivo", {data: {conexao: e.conexao, fonte: e.fonte,
      atualizado_em: e.atualizadoEm, reconexoes: e.reconexoes}});
    if (e.metricasNovas) { e.metricasNovas = false; setProps("painel-metricas", {data: e.metricas}); }
    if (e.atualNovo) {
      e.atualNovo = false;
      setProps("painel-atual", {data: {preco: e.atual.preco, previsao: e.atual.previsao}});
    }
  }

  /* Dash component JSON for the clientside callbacks. */
  function h(tipo, props, filhos) {
    var p = props || {};
    if (filhos !== undefined) { p.children = filhos; }
    return {type: tipo, namespace: "dash_html_components", props: p};
  }

  function numero(v, casas) {
    if (typeof v !== "number" || !isFinite(v)) { return "—"; }
    return v.toLocaleString("pt-BR", {minimumFractionDigits: casas, maximumFractionDigits: casas});
  }

  function dinheiro(v, cfg, casas) {
    return typeof v === "number" && isFinite(v) ? cfg.moeda_cotacao + " " + numero(v, casas) : "—";
  }

  function porcento(fracao, casas) {
    return typeof fracao === "number" && isFinite(fracao) ? numero(fracao * 100, casas) + "%" : "—";
  }

  function comSinal(valorPct, casas) {
    if (typeof valorPct !== "number" || !isFinite(valorPct)) { return "—"; }
    var arredondado = Number(valorPct.toFixed(casas));
    var sinal = arredondado > 0 ? "+" : arredondado < 0 ? "−" : "";
    return sinal + numero(Math.abs(arredondado), casas) + "%";
  }

  /* "2025-05-31T04:00:00-03:00" (already in the configured zone) -> "31/05/2025 04:00" */
  function dataHora(iso) {
    if (typeof iso !== "string" || iso.length < 16) { return "—"; }
    return iso.slice(8, 10) + "/" + iso.slice(5, 7) + "/" + iso.slice(0, 4) + " " +
      iso.slice(11, 16);
  }

  function horaNoFuso(ms, fuso) {
    try {
      return new Intl.DateTimeFormat("pt-BR", {timeZone: fuso, hour: "2-digit",
        minute: "2-digit", second: "2-digit"}).format(new Date(ms));
    } catch (erro) {
      return new Date(ms).toLocaleTimeString("pt-BR");
    }
  }

  function nomeModelo(nome, cfg) { return (cfg.modelos || {})[nome] || nome || "—"; }

  function cartao(titulo, valorTexto, detalhe, classe, id) {
    return h("Div", {className: "cartao " + (classe || ""), id: id}, [
      h("Span", {className: "cartao-titulo"}, titulo),
      h("Strong", {className: "cartao-valor"}, valorTexto),
      h("Span", {className: "cartao-detalhe"}, detalhe)
    ]);
  }

  function melhorCandidato(candidatos, campo) {
    var melhor = null;
    Object.keys(candidatos || {}).forEach(function (nome) {
      var v = candidatos[nome][campo];
      if (typeof v === "number" && isFinite(v) && (melhor === null || v > melhor.valor)) {
        melhor = {nome: nome, valor: v};
      }
    });
    return melhor;
  }

  function cartoes(metricas, atual, cfg, base) {
    if (!cfg) { return [[], []]; }
    var casas = (base && base.casas) || 2;
    var m = metricas || {};
    var pub = m.publicado || {};
    var per = m.persistencia || {};
    var em = m.modelo_em_uso;
    var n = pub.resultados || 0;
    var preco = (atual && atual.preco) || null;
    var prev = (atual && atual.previsao) || null;
    var precoValor = preco ? preco.preco : (prev ? prev.preco_atual : null);
    var precoEm = preco ? preco.horario : (prev ? prev.feita_em : null);

    var skill = pub.skill_vs_persistencia;
    var skillDetalhe, skillClasse = "";
    if (!n) {
      skillDetalhe = "aguardando resultados: cada previsão é conferida " + cfg.horizonte + " depois";
    } else if (typeof skill === "number" && skill > 0.0005) {
      skillDetalhe = "a previsão publicada errou " + numero(skill * 100, 1) +
        "% menos que a persistência";
      skillClasse = "bom";
    } else if (typeof skill === "number" && skill < -0.0005) {
      skillDetalhe = "a previsão publicada errou " + numero(-skill * 100, 1) +
        "% mais que a persistência";
      skillClasse = "ruim";
    } else {
      skillDetalhe = "a previsão publicada errou o mesmo que a persistência";
    }
    if (n && em === "persistence") { skillDetalhe += "; agora publica a própria persistência"; }
    var melhorSkill = melhorCandidato(m.candidatos, "skill_vs_persistencia");
    if (n && melhorSkill) {
      skillDetalhe += " · melhor candidato: " + nomeModelo(melhorSkill.nome, cfg) + " " +
        comSinal(melhorSkill.valor * 100, 1);
    }

    var cobertura = pub.cobertura;
    var coberturaClasse = typeof cobertura === "number"
      ? (Math.abs(cobertura - cfg.nivel) <= 0.05 ? "bom" : "atencao") : "";

    var direcao = pub.acerto_direcao;
    var melhorDirecao = melhorCandidato(m.candidatos, "acerto_direcao");
    var direcaoDetalhe = typeof direcao === "number"
      ? "50% seria o acaso"
      : "a persistência não prevê direção";
    if (melhorDirecao) {
      direcaoDetalhe += " · melhor candidato: " + nomeModelo(melhorDirecao.nome, cfg) + " " +
        porcento(melhorDirecao.valor, 0);
    }

    var itens = [
      cartao("Preço agora", dinheiro(precoValor, cfg, casas),
        precoEm ? "em " + dataHora(precoEm) : "aguardando o primeiro preço", "", "cartao-preco"),
      cartao("Previsão para +" + cfg.horizonte, prev ? dinheiro(prev.previsao, cfg, casas) : "—",
        prev ? comSinal(prev.variacao_prevista_pct, 2) + " · intervalo de " + cfg.nivel_pct + ": " +
          numero(prev.limite_inferior, casas) + " a " + numero(prev.limite_superior, casas)
          : "aquecendo: a primeira previsão sai após dois preços", "destaque", "cartao-previsao"),
      cartao("Erro médio (MAE)", dinheiro(pub.mae, cfg, casas),
        "persistência: " + dinheiro(per.mae, cfg, casas), "", "cartao-mae"),
      cartao("Skill vs “preço fica igual”", n ? comSinal((skill || 0) * 100, 1) : "—",
        skillDetalhe, skillClasse, "cartao-skill"),
      cartao("Cobertura do intervalo", porcento(cobertura, 1),
        "meta " + cfg.nivel_pct + (typeof pub.largura_media_bps === "number"
          ? " · largura média " + numero(pub.largura_media_bps, 0) + " bps" : ""),
        coberturaClasse, "cartao-cobertura"),
      cartao("Acerto de direção", porcento(direcao, 1), direcaoDetalhe, "", "cartao-direcao"),
      cartao("Modelo em uso", nomeModelo(em, cfg),
        numero(n, 0) + " resultado" + (n === 1 ? "" : "s") + " conferido" + (n === 1 ? "" : "s") +
          (m.janela ? " (janela de " + numero(m.janela, 0) + ")" : ""), "", "cartao-modelo")
    ];
    return [itens, tabelaModelos(m, cfg, casas)];
  }

  function tabelaModelos(m, cfg, casas) {
    if (!m.publicado) { return h("P", {className: "nota"}, "Aguardando as métricas do motor."); }
    var linhas = [
      {nome: "Publicado: " + nomeModelo(m.modelo_em_uso, cfg), v: m.publicado, classe: "publicado"},
      {nome: "Persistência (“preço fica igual”)", v: m.persistencia, classe: "referencia"}
    ];
    Object.keys(m.candidatos || {}).sort(function (a, b) {
      var sa = m.candidatos[a].skill_vs_persistencia, sb = m.candidatos[b].skill_vs_persistencia;
      return (typeof sb === "number" ? sb : -Infinity) - (typeof sa === "number" ? sa : -Infinity);
    }).forEach(function (nome) {
      linhas.push({nome: nomeModelo(nome, cfg) + (nome === m.modelo_em_uso ? " · em uso" : ""),
        v: m.candidatos[nome], classe: nome === m.modelo_em_uso ? "em-uso" : ""});
    });
    var cab = ["Modelo", "MAE", "Skill", "Cobertura", "Direção", "Resultados"];
    return h("Table", {className: "tabela"}, [
      h("Thead", {}, h("Tr", {}, cab.map(function (c) { return h("Th", {}, c); }))),
      h("Tbody", {}, linhas.map(function (l) {
        var s = l.v.skill_vs_persistencia;
        return h("Tr", {className: l.classe}, [
          h("Td", {}, l.nome),
          h("Td", {}, dinheiro(l.v.mae, cfg, casas)),
          h("Td", {className: typeof s === "number" ? (s > 0.0005 ? "bom" : s < -0.0005 ? "ruim" : "") : ""},
            typeof s === "number" ? comSinal(s * 100, 1) : "—"),
          h("Td", {}, porcento(l.v.cobertura, 1)),
          h("Td", {}, porcento(l.v.acerto_direcao, 1)),
          h("Td", {}, numero(l.v.resultados, 0))
        ]);
      }))
    ]);
  }

  var ESTADOS_FONTE = {
    live: ["Ao vivo", "ok"],
    stale: ["Sem dados novos", "atencao"],
    unreachable: ["Fonte inacessível", "erro"],
    rate_limited: ["Limite de requisições atingido", "atencao"],
    auth_error: ["Chave da API recusada", "erro"],
    budget_exhausted: ["Orçamento de créditos esgotado", "erro"],
    starting: ["Iniciando", "atencao"]
  };
  var TIPOS_FONTE = {
    rest: "CoinGecko (REST)",
    websocket: "CoinGecko (WebSocket)",
    replay: "Reprodução de dados reais (demo)"
  };

  function faixa(status, vivo, cfg) {
    if (!cfg) { return []; }
    var s = status || {};
    var v = vivo || {};
    var estado = (v.fonte && v.fonte.fonte) || s.fonte;
    var mensagem = (v.fonte && v.fonte.mensagem) || s.mensagem || "";
    var rotulo = ESTADOS_FONTE[estado] || [estado ? "Fonte: " + estado : "Sem fonte de preços", "atencao"];
    if (v.conexao === "reconectando") {
      rotulo = ["Reconectando ao servidor…", "erro"];
    } else if (!v.conexao || v.conexao === "conectando") {
      rotulo = ["Conectando…", "atencao"];
    }
    var partes = [
      h("Span", {className: "selo " + rotulo[1], id: "selo-fonte", title: mensagem}, rotulo[0])
    ];
    if (s.tipo) {
      partes.push(h("Span", {className: "faixa-item"}, TIPOS_FONTE[s.tipo] || s.tipo));
    }
    /* credits: the live status event's if it carries them, else the page's snapshot */
    var creditos = v.fonte && typeof v.fonte.orcamento_creditos === "number" ? v.fonte : s;
    if (creditos.orcamento_creditos) {
      var restam = Math.max(0, creditos.orcamento_creditos - (creditos.creditos_usados_mes || 0));
      partes.push(h("Span", {className: "faixa-item", id: "orcamento"}, "Orçamento: restam " +
        numero(restam, 0) + " de " + numero(creditos.orcamento_creditos, 0) +
        " créditos no mês"));
    }
    /* the last event received, else the server's clock when it read the history */
    var hora = v.atualizado_em ? horaNoFuso(v.atualizado_em, cfg.fuso)
      : (s.agora ? s.agora.slice(11, 19) : null);
    if (hora) {
      partes.push(h("Span", {className: "faixa-item faixa-hora", id: "atualizado"},
        "Atualizado às " + hora + " (" + cfg.fuso + ")"));
    }
    return partes;
  }

  /* -- Dash hooks ---------------------------------------------------------------------------- */

  window.dash_clientside = Object.assign({}, window.dash_clientside, {
    painel: {
      iniciar: function (cfg) {
        if (!cfg || e.config) { return; }
        e.config = cfg;
        e.ultimoId = typeof cfg.ultimo_id === "number" ? cfg.ultimo_id : null;
        conectar();
      },
      base: function (baseMoeda, baseComparador) {
        [baseMoeda, baseComparador].forEach(function (base) {
          if (!base || e.bases[base.versao]) { return; }
          e.bases[base.versao] = base;
          if (base.moeda) {
            var historico = base.historico;
            e.moeda = base.moeda;
            e.atual = {preco: historico.tick[historico.tick.length - 1] || null,
              previsao: historico.previsao[historico.previsao.length - 1] || null};
            e.metricas = null;
          }
          aguardarFigura(base);
        });
        var vivas = {};
        GRAFICOS.forEach(function (id) {
          var v = e.preenchidas[id];
          if (v) { vivas[v] = true; }
        });
        [baseMoeda, baseComparador].forEach(function (b) { if (b) { vivas[b.versao] = true; } });
        Object.keys(e.bases).forEach(function (v) { if (!vivas[v]) { delete e.bases[v]; } });
      },
      cartoes: cartoes,
      faixa: faixa,
      csv: function (moeda, cfg) {
        return cfg && moeda ? cfg.csv.replace("{moeda}", encodeURIComponent(moeda))
          : window.dash_clientside.no_update;
      }
    }
  });

  window.cryptotechPainel = {
    estado: e,
    medidas: function () { return e.medidas.slice(); },
    pontos: function (id) {
      var gd = graficoDom(id);
      return gd && gd.data ? gd.data.map(function (t) {
        return {nome: t.name, n: t.x ? t.x.length : 0, x: t.x ? t.x.slice() : [],
          y: t.y ? Array.prototype.slice.call(t.y) : [], meta: t.meta || null};
      }) : [];
    }
  };
}());
