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
 *    small Dash stores with dash_clientside.set_props (at most every INTERVALO_PAINEL ms);
 *    painel-cartoes.js draws them (clientside callbacks, namespace "painel"). The banner also
 *    gets the age of the newest price, the replay's real speed (market time per second of
 *    clock, from the ticks' own times against their arrival here, unless the source reports
 *    `velocidade_real`) and the engine's state (`motor`): from the `status` event when it
 *    carries it, else from GET /status, read when the page starts and then every
 *    INTERVALO_STATUS ms (a timer of its own: a stalled engine may stop the heartbeat too).
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
  var INTERVALO_STATUS = 30000;
  var JANELA_RITMO_MS = 30000;
  var MAX_RETORNOS = 2000;

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
    reconexoes: 0,
    ritmo: [],
    ultimoPreco: null,
    motor: null,
    motorNoEvento: false,
    velocidadeFonte: null,
    statusLido: 0,
    horizonte: null,
    retornos: [],
    statusRecebidos: 0
  };

  GRAFICOS.forEach(function (id) { e.pendentes[id] = []; });

  function agora() { return performance.timeOrigin + performance.now(); }

  function pct(valor, base) {
    return (typeof valor === "number" && typeof base === "number" && base !== 0)
      ? (valor / base - 1) * 100 : null;
  }

  /* a quantile's price: `quantis` by key ({"q25": ...}) or, from an older server, a list */
  function quantil(chave, i) {
    return function (d) {
      var q = d.quantis;
      return !q ? null : Array.isArray(q) ? q[i] : q[chave];
    };
  }

  var DERIVADOS = {
    q25: quantil("q25", 2),
    q75: quantil("q75", 4),
    variacao_real_pct: function (d) { return pct(d.preco_real, d.preco_atual); },
    limite_inferior_pct: function (d) { return pct(d.limite_inferior, d.preco_atual); },
    limite_superior_pct: function (d) { return pct(d.limite_superior, d.preco_atual); }
  };
  var FILTROS = {
    fora_do_intervalo: function (d) { return d.dentro_do_intervalo === false; }
  };

  /*
   * Market seconds per second of clock over the last JANELA_RITMO_MS of arrivals: samples are
   * {chegada: arrival ms, mercado: newest tick time ms so far}. Null below 2 s of arrivals.
   */
  function velocidade(amostras) {
    if (!amostras || amostras.length < 2) { return null; }
    var a = amostras[0], b = amostras[amostras.length - 1];
    var relogio = (b.chegada - a.chegada) / 1000;
    if (relogio < 2) { return null; }
    return Math.max(0, (b.mercado - a.mercado) / 1000) / relogio;
  }

  function anotarRitmo(horario, chegada) {
    var t = Date.parse(horario);
    if (!isFinite(t)) { return; }
    if (e.ultimoPreco === null || t > e.ultimoPreco) { e.ultimoPreco = t; }
    e.ritmo.push({chegada: chegada, mercado: e.ultimoPreco});
    var corte = chegada - JANELA_RITMO_MS;
    var velhas = 0;
    while (velhas < e.ritmo.length - 2 && e.ritmo[velhas].chegada < corte) { velhas += 1; }
    if (velhas) { e.ritmo.splice(0, velhas); }
  }

  /* a forecast without `horizonte` (an older server) is of the first configured horizon */
  function doHorizonte(d, horizonte) {
    return (d.horizonte || (e.config && e.config.horizonte_padrao)) === horizonte;
  }

  /* the realised volatility of the chosen coin and horizon: RMS of the settled forecasts'
     log-returns (the last MAX_RETORNOS in the window), beside the RMS of the volatility
     those same forecasts predicted */
  function anotarRetorno(d) {
    if (typeof d.preco_real !== "number" || !(d.preco_atual > 0) || !(d.preco_real > 0)) {
      return;
    }
    e.retornos.push({real: Math.log(d.preco_real / d.preco_atual),
      prevista: typeof d.volatilidade_prevista === "number" ? d.volatilidade_prevista : null});
    if (e.retornos.length > MAX_RETORNOS) { e.retornos.splice(0, e.retornos.length - MAX_RETORNOS); }
  }

  /* root mean square of one field over the settled forecasts that have it */
  function rms(campo) {
    var soma = 0, n = 0;
    e.retornos.forEach(function (r) {
      if (typeof r[campo] === "number") { soma += r[campo] * r[campo]; n += 1; }
    });
    return n >= 2 ? Math.sqrt(soma / n) : null;
  }

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
      if (tipo === "tick") { anotarRitmo(dados.horario, item.chegada); }
      e.recentes.push(item);
      if (e.recentes.length > MAX_RECENTES * 1.25) {
        e.recentes.splice(0, e.recentes.length - MAX_RECENTES);
      }
      GRAFICOS.forEach(function (id) { e.pendentes[id].push(item); });
      agendarGraficos();
      if (dados.moeda === e.moeda) {
        if (tipo === "tick") {
          e.atual.preco = dados;
          e.atualNovo = true;
        } else if (doHorizonte(dados, e.horizonte)) {
          if (tipo === "previsao") { e.atual.previsao = dados; } else { anotarRetorno(dados); }
          e.atualNovo = true;
        }
      }
    } else if (tipo === "metricas") {
      if (dados.moeda === e.moeda) { metricasDoHorizonte(dados); }
    } else if (tipo === "status") {
      e.fonte = dados;
      if (dados.motor !== undefined) { e.motor = dados.motor; e.motorNoEvento = true; }
      if (typeof dados.velocidade_real === "number") { e.velocidadeFonte = dados.velocidade_real; }

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

  /*
   * A `metricas` event for the chosen coin: its top level is the first horizon's; another
   * horizon's come in `por_horizonte` (published and reference only: the persistence and the
   * candidates stay as the page last read them).
   */
  function metricasDoHorizonte(dados) {
    var padrao = (e.config || {}).horizonte_padrao;
    if (e.horizonte === padrao || e.horizonte === dados.horizonte) {
      e.metricas = dados;
    } else {
      var h = dados.por_horizonte && dados.por_horizonte[e.horizonte];
      if (!h) { return; }
      e.metricas = Object.assign({}, e.metricas || {}, {publicado: h.publicado,
        ewma: h.ewma || (e.metricas || {}).ewma, modelo_em_uso: h.modelo_em_uso,
        horizonte: h.horizonte});
    }
    e.metricasNovas = true;
  }

  /* GET /status for what the `status` event does not carry (the engine's state). */
  function lerStatus() {
    if (e.motorNoEvento || !window.fetch || !e.config.status) { return; }
    e.statusLido = agora();
    window.fetch(e.config.status, {cache: "no-store", headers: {Accept: "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) {
        if (!j) { return; }
        e.statusRecebidos += 1;
        if (!e.motorNoEvento) { e.motor = j.motor || null; }
        var vel = j.fonte && j.fonte.velocidade_real;
        if (typeof vel === "number") { e.velocidadeFonte = vel; }
        agendarPainel();
      })
      .catch(function () { return null; });
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
        if (m.horizonte && !doHorizonte(d, m.horizonte)) { continue; }
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
    var historico = base.historico;
    (historico.tick || []).forEach(function (d) { itens.push({tipo: "tick", dados: d}); });
    (historico.previsao || []).forEach(function (d) {
      itens.push({tipo: "previsao", dados: d});
      /* a settled forecast comes once: it is also the `resultado` it was */
      if (d.situacao === "realizada") { itens.push({tipo: "resultado", dados: d}); }
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

  /* -- cards and banner (drawn by painel-cartoes.js) --------------------------------------- */

  function agendarPainel() {
    if (e.painelAgendado !== null) { return; }
    var espera = Math.max(0, e.ultimoPainel + INTERVALO_PAINEL - agora());
    e.painelAgendado = setTimeout(atualizarPainel, espera);
  }

  function atualizarPainel() {
    e.painelAgendado = null;
    e.ultimoPainel = agora();
    var vel = typeof e.velocidadeFonte === "number" ? e.velocidadeFonte : velocidade(e.ritmo);
    setProps("painel-vivo", {data: {conexao: e.conexao, fonte: e.fonte,
      atualizado_em: e.atualizadoEm, reconexoes: e.reconexoes, motor: e.motor,
      ultimo_preco: e.ultimoPreco, velocidade: vel, agora: Date.now()}});
    if (e.metricasNovas) {
      e.metricasNovas = false;
      setProps("painel-metricas", {data: e.metricas});
    }
    if (e.atualNovo) {
      e.atualNovo = false;
      setProps("painel-atual", {data: {preco: e.atual.preco, previsao: e.atual.previsao,
        vol_realizada: rms("real"), vol_prevista_media: rms("prevista"),
        n_realizadas: e.retornos.length}});
    }
  }

  /* -- Dash hooks ---------------------------------------------------------------------------- */

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.painel = Object.assign(window.dash_clientside.painel || {}, {
    iniciar: function (cfg) {
      if (!cfg || e.config) { return; }
      e.config = cfg;
      e.ultimoId = typeof cfg.ultimo_id === "number" ? cfg.ultimo_id : null;
      conectar();
      lerStatus();
      setInterval(lerStatus, INTERVALO_STATUS);
    },
    base: function (baseMoeda, baseComparador) {
      [baseMoeda, baseComparador].forEach(function (base) {
        if (!base || e.bases[base.versao]) { return; }
        e.bases[base.versao] = base;
        if (base.moeda) {
          var historico = base.historico;
          e.moeda = base.moeda;
          e.horizonte = base.horizonte || (e.config || {}).horizonte_padrao;
          e.retornos = [];
          historico.previsao.forEach(function (d) {
            if (d.situacao === "realizada") { anotarRetorno(d); }
          });
          e.atualNovo = true;
          agendarPainel();
          e.atual = {preco: historico.tick[historico.tick.length - 1] || null,
            previsao: historico.previsao[historico.previsao.length - 1] || null};
          e.metricas = null;
          var ultimo = e.atual.preco && Date.parse(e.atual.preco.horario);
          if (ultimo && (e.ultimoPreco === null || ultimo > e.ultimoPreco)) {
            e.ultimoPreco = ultimo;
          }
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
    /*
     * The CSV export of the chosen coin, window and horizon: the forecasts made from the
     * window's start (the coin's newest price minus the window) to that newest price.
     */
    csv: function (moeda, janela, atual, horizonte, cfg) {
      if (!cfg || !moeda) { return window.dash_clientside.no_update; }
      var url = cfg.csv.replace("{moeda}", encodeURIComponent(moeda));
      var fim = atual && atual.preco ? Date.parse(atual.preco.horario) : NaN;
      var segundos = (cfg.janelas || {})[janela];
      if (isFinite(fim) && segundos) {
        url += "&inicio=" + encodeURIComponent(isoUtc(fim - segundos * 1000)) +
          "&fim=" + encodeURIComponent(isoUtc(fim));
      }
      if (cfg.csv_ordem) { url += "&ordem=" + cfg.csv_ordem; }
      if (cfg.csv_horizonte && horizonte) { url += "&horizonte=" + encodeURIComponent(horizonte); }
      return url;
    }
  });

  function isoUtc(ms) { return new Date(ms).toISOString().slice(0, 19) + "Z"; }

  window.cryptotechPainel = {
    estado: e,
    medidas: function () { return e.medidas.slice(); },
    velocidade: velocidade,
    pontos: function (id) {
      var gd = graficoDom(id);
      return gd && gd.data ? gd.data.map(function (t) {
        return {nome: t.name, n: t.x ? t.x.length : 0, x: t.x ? t.x.slice() : [],
          y: t.y ? Array.prototype.slice.call(t.y) : [], meta: t.meta || null};
      }) : [];
    }
  };
}());
