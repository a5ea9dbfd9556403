/*
 * CryptoTech · painel: the metric cards, the models table and the source banner.
 *
 * Clientside callbacks (namespace "painel", see app.py) that turn the stores painel.js fills
 * (painel-metricas, painel-atual, painel-status, painel-vivo) into Dash components, with
 * numbers and dates the Brazilian way. Pure formatting: no state, no network.
 */
(function () {
  "use strict";

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
      skillDetalhe = "aguardando resultados: cada previsão é conferida " + cfg.horizonte +
        " depois";
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

  function classeSkill(s) {
    if (typeof s !== "number") { return ""; }
    return s > 0.0005 ? "bom" : s < -0.0005 ? "ruim" : "";
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
          h("Td", {className: classeSkill(s)}, typeof s === "number" ? comSinal(s * 100, 1) : "—"),
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
    var rotulo = ESTADOS_FONTE[estado] ||
      [estado ? "Fonte: " + estado : "Sem fonte de preços", "atencao"];
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

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.painel = Object.assign(window.dash_clientside.painel || {}, {
    cartoes: cartoes,
    faixa: faixa
  });
}());
