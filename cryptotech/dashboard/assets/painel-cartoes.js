/*
 * CryptoTech · painel: the metric cards, the models table and the source banner.
 *
 * Clientside callbacks (namespace "painel", see app.py) that turn the stores painel.js fills
 * (painel-metricas, painel-atual, painel-status, painel-vivo) into Dash components, with
 * numbers and dates the Brazilian way. Pure formatting: no state, no network.
 *
 * Every figure a user reads comes with a plain explanation in its `title` (a tooltip), and
 * its unit; the page's "Como ler estes números" section says the same at length.
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

  /* "14/03/2025 10:05" in the configured zone, from epoch ms */
  function dataHoraNoFuso(ms, fuso) {
    try {
      return new Intl.DateTimeFormat("pt-BR", {timeZone: fuso, day: "2-digit", month: "2-digit",
        year: "numeric", hour: "2-digit", minute: "2-digit"}).format(new Date(ms))
        .replace(",", "");
    } catch (erro) {
      return new Date(ms).toLocaleString("pt-BR");
    }
  }

  function nomeModelo(nome, cfg) { return (cfg.modelos || {})[nome] || nome || "—"; }

  function cartao(titulo, valorTexto, detalhe, classe, id, explicacao) {
    return h("Div", {className: "cartao " + (classe || ""), id: id, title: explicacao}, [
      h("Span", {className: "cartao-titulo"}, titulo),
      h("Strong", {className: "cartao-valor"}, valorTexto),
      h("Span", {className: "cartao-detalhe"}, detalhe)
    ]);
  }

  function melhorCandidato(candidatos, campo) {
    var melhor = null;
    Object.keys(candidatos || {}).forEach(function (nome) {
      if (nome === "ewma") { return; }  /* the band's reference: its median is persistence */
      var v = candidatos[nome][campo];
      if (typeof v === "number" && isFinite(v) && (melhor === null || v > melhor.valor)) {
        melhor = {nome: nome, valor: v};
      }
    });
    return melhor;
  }

  /* Plain explanations (tooltips) of each figure, with its unit. */
  var EXPLICA = {
    faixa: function (cfg, horizonte) {
      return "Faixa provável: onde o preço deve estar daqui a " + horizonte + ", em " +
        cfg.nivel_pct + " dos casos, em " + cfg.moeda_cotacao + ". O meio da faixa é a " +
        "mediana prevista; enquanto nenhum modelo erra menos que a persistência, ele é o " +
        "preço de agora (“sem mudança”).";
    },
    subir: function (cfg, horizonte) {
      return "Chance de subir: a probabilidade de o preço estar acima do de agora daqui a " +
        horizonte + ". 50% quer dizer “tanto faz”. Brier vs 50%: quanto essa chance errou " +
        "menos (acima de 0%) ou mais (abaixo) que dizer sempre 50%.";
    },
    volatilidade: function (cfg, horizonte) {
      return "Volatilidade prevista: quanto o preço deve oscilar em " + horizonte + " (um " +
        "desvio-padrão do retorno, em % do preço). A realizada é a oscilação medida nas " +
        "previsões já conferidas desta janela, ao lado da que elas previam.";
    },
    intervalo: function (cfg) {
      return "Pontuação do intervalo (interval score): a largura da faixa de " + cfg.nivel_pct +
        " mais uma multa quando o preço cai fora. Skill = 1 − a nossa ÷ a da faixa " +
        "EWMA-Gaussiana (volatilidade recente em volta de “o preço fica igual”), em %: acima " +
        "de 0%, nossa faixa é melhor. Pinball: o mesmo para todos os quantis juntos.";
    },
    mae: function (cfg) {
      return "MAE (erro absoluto médio): em média, quanto a previsão errou o preço real, em " +
        cfg.moeda_cotacao + ". Menor é melhor. Ao lado, o mesmo erro de quem prevê que " +
        "“o preço fica igual” (persistência).";
    },
    skill: function () {
      return "Skill = 1 − MAE da previsão ÷ MAE da persistência, em %. Acima de 0%: errou " +
        "menos que prever “o preço fica igual”; abaixo de 0%: errou mais; 0%: empate.";
    },
    cobertura: function (cfg) {
      return "Cobertura: em quantos % dos casos o preço real caiu dentro do intervalo " +
        "previsto; o certo é ficar perto de " + cfg.nivel_pct + ". Largura média: o tamanho " +
        "do intervalo em % do preço; bps são pontos-base (1 bp = 0,01% do preço; " +
        "100 bps = 1%). Mais estreito com a mesma cobertura é melhor.";
    },
    direcao: function () {
      return "Acerto de direção: em quantos % dos casos a previsão acertou se o preço subiria " +
        "ou cairia. 50% é o que se acerta no cara ou coroa.";
    },
    modelo: function () {
      return "O modelo cuja previsão é publicada agora, e quantos resultados já foram " +
        "conferidos na janela móvel das métricas.";
    },
    tabela: {
      MAE: function (cfg) { return EXPLICA.mae(cfg); },
      Skill: function (cfg) { return EXPLICA.skill(cfg); },
      Cobertura: function (cfg) { return EXPLICA.cobertura(cfg); },
      "Faixa": function (cfg) { return EXPLICA.intervalo(cfg); },
      "Direção": function (cfg) { return EXPLICA.direcao(cfg); },
      Resultados: function () { return "Quantas previsões já foram conferidas na janela."; }
    }
  };

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
      skillDetalhe = "aguardando resultados: cada previsão é conferida " +
        ((base && base.horizonte_rotulo) || cfg.horizonte) + " depois";
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

    var horizonte = (base && base.horizonte_rotulo) || cfg.horizonte;
    var largura = pub.largura_media_bps;
    var faixaDetalhe = "aquecendo: a primeira previsão sai após dois preços";
    if (prev) {
      var meio = typeof prev.variacao_prevista_pct === "number" &&
        Math.abs(prev.variacao_prevista_pct) < 0.005 ? "sem mudança"
        : comSinal(prev.variacao_prevista_pct, 2);
      faixaDetalhe = "(" + cfg.nivel_pct + ") · meio da faixa: " +
        dinheiro(prev.previsao, cfg, casas) + " (" + meio + ")";
      if ((prev.modelo || em) === "persistence") {
        faixaDetalhe += " · o meio é “sem mudança” enquanto nenhum modelo erra menos que a " +
          "persistência";
      }
    }
    var subir = prev ? prev.prob_subir : null;
    var brier = pub.skill_brier;
    var vol = prev ? prev.volatilidade_prevista : null;
    var realizada = atual ? atual.vol_realizada : null;
    var skillFaixa = pub.skill_escore_intervalo;
    var pinball = pub.skill_pinball;

    var itens = [
      cartao("Preço agora", dinheiro(precoValor, cfg, casas),
        precoEm ? "em " + dataHora(precoEm) : "aguardando o primeiro preço", "", "cartao-preco",
        "O último preço recebido da fonte, em " + cfg.moeda_cotacao + "."),
      cartao("Faixa provável em " + horizonte,
        prev ? dinheiro(prev.limite_inferior, cfg, casas) + " – " +
          numero(prev.limite_superior, casas) : "—",
        faixaDetalhe, "destaque", "cartao-faixa", EXPLICA.faixa(cfg, horizonte)),
      cartao("Chance de subir", porcento(subir, 0),
        "em " + horizonte + " · 50% = tanto faz" + (typeof brier === "number"
          ? " · Brier vs 50%: " + comSinal(brier * 100, 1) : ""),
        "", "cartao-subir", EXPLICA.subir(cfg, horizonte)),
      cartao("Volatilidade prevista", typeof vol === "number" ? "±" + numero(vol * 100, 2) + "%"
        : "—", "em " + horizonte + " · realizada: " + (typeof realizada === "number"
          ? "±" + numero(realizada * 100, 2) + "%" + (typeof atual.vol_prevista_media === "number"
            ? ", prevista para as mesmas: ±" + numero(atual.vol_prevista_media * 100, 2) + "%"
            : "") + " (" + numero(atual.n_realizadas, 0) + " conferidas)"
          : "aguardando resultados"),
        "", "cartao-volatilidade", EXPLICA.volatilidade(cfg, horizonte)),
      cartao("Cobertura da faixa", porcento(cobertura, 1),
        "meta " + cfg.nivel_pct + (typeof largura === "number"
          ? " · largura média " + numero(largura / 100, 2) + "% do preço (" +
            numero(largura, 0) + " bps)" : ""),
        coberturaClasse, "cartao-cobertura", EXPLICA.cobertura(cfg)),
      cartao("Faixa vs referência EWMA (skill)",
        typeof skillFaixa === "number" ? comSinal(skillFaixa * 100, 1) : "—",
        (typeof skillFaixa === "number"
          ? (skillFaixa > 0.0005 ? "pontuação do intervalo melhor que a da referência"
            : skillFaixa < -0.0005 ? "pontuação do intervalo pior que a da referência"
              : "pontuação do intervalo igual à da referência")
          : "aguardando resultados") +
          (typeof pinball === "number" ? " · pinball: " + comSinal(pinball * 100, 1) : ""),
        classeSkill(skillFaixa), "cartao-intervalo", EXPLICA.intervalo(cfg)),
      cartao("Meio da faixa vs “preço fica igual” (skill)",
        n ? comSinal((skill || 0) * 100, 1) : "—",
        skillDetalhe + " · MAE " + dinheiro(pub.mae, cfg, casas) + ", persistência: " +
          dinheiro(per.mae, cfg, casas), skillClasse, "cartao-skill", EXPLICA.skill(cfg)),
      cartao("Modelo em uso", nomeModelo(em, cfg),
        numero(n, 0) + " resultado" + (n === 1 ? "" : "s") + " conferido" + (n === 1 ? "" : "s") +
          (m.janela ? " (janela de " + numero(m.janela, 0) + ")" : ""), "", "cartao-modelo",
        EXPLICA.modelo(cfg))
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
      {nome: "Persistência (“preço fica igual”)", v: m.persistencia || {}, classe: "referencia"}
    ];
    if (m.ewma && !(m.candidatos || {}).ewma) {
      linhas.push({nome: nomeModelo("ewma", cfg), v: m.ewma, classe: "referencia"});
    }
    Object.keys(m.candidatos || {}).sort(function (a, b) {
      var sa = m.candidatos[a].skill_vs_persistencia, sb = m.candidatos[b].skill_vs_persistencia;
      return (typeof sb === "number" ? sb : -Infinity) - (typeof sa === "number" ? sa : -Infinity);
    }).forEach(function (nome) {
      linhas.push({nome: nomeModelo(nome, cfg) + (nome === m.modelo_em_uso ? " · em uso" : ""),
        v: m.candidatos[nome], classe: nome === m.modelo_em_uso ? "em-uso" : ""});
    });
    /* skill and coverage first: they must stay in view on a phone (the rest may scroll) */
    var cab = [["Modelo", ""], ["Skill", " (%)"], ["Cobertura", " (%)"], ["Faixa", " (%)"],
      ["MAE", " (" + cfg.moeda_cotacao + ")"], ["Direção", " (%)"], ["Resultados", ""]];
    return h("Table", {className: "tabela"}, [
      h("Thead", {}, h("Tr", {}, cab.map(function (c) {
        var explica = EXPLICA.tabela[c[0]];
        return h("Th", {title: explica ? explica(cfg) : undefined,
          className: explica ? "explicado" : undefined}, c[0] + c[1]);
      }))),
      h("Tbody", {}, linhas.map(function (l) {
        var s = l.v.skill_vs_persistencia;
        return h("Tr", {className: l.classe}, [
          h("Td", {}, l.nome),
          h("Td", {className: classeSkill(s)}, typeof s === "number" ? comSinal(s * 100, 1) : "—"),
          h("Td", {}, porcento(l.v.cobertura, 1)),
          h("Td", {className: classeSkill(l.v.skill_escore_intervalo)},
            typeof l.v.skill_escore_intervalo === "number"
              ? comSinal(l.v.skill_escore_intervalo * 100, 1) : "—"),
          h("Td", {}, dinheiro(l.v.mae, cfg, casas)),
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
  /* One label per kind of source; older ids (coingecko-rest, coingecko-ws) read the same. */
  var TIPOS_FONTE = {
    rest: "CoinGecko (consulta periódica)",
    websocket: "CoinGecko (transmissão contínua)",
    replay: "Reprodução de dados reais (demo)"
  };
  var SINONIMOS_FONTE = {"coingecko-rest": "rest", "coingecko-ws": "websocket",
    "coingecko-websocket": "websocket", "ws": "websocket"};

  function tipoFonte(tipo) {
    if (!tipo) { return null; }
    var base = String(tipo).split(" ")[0];
    var chave = TIPOS_FONTE[base] ? base : SINONIMOS_FONTE[base];
    if (!chave) { return String(tipo); }
    /* "coingecko-rest (fallback from websocket)": the REST poller standing in */
    return TIPOS_FONTE[chave] + (base !== tipo && chave === "rest"
      ? " · no lugar da transmissão contínua" : "");
  }

  function ehReproducao(tipo) { return tipo === "replay"; }

  /* "há 12 s", "há 3 min", "há 5 h", "há 4 dias", "há 11 meses" */
  function idadeTexto(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 5) { return "agora mesmo"; }
    if (s < 60) { return "há " + s + " s"; }
    var min = Math.floor(s / 60);
    if (min < 60) { return "há " + min + " min"; }
    var horas = Math.floor(min / 60);
    if (horas < 48) { return "há " + horas + " h"; }
    var dias = Math.floor(horas / 24);
    if (dias < 60) { return "há " + dias + " dias"; }
    var meses = Math.floor(dias / 30.44);
    return meses < 24 ? "há " + meses + " meses" : "há " + Math.floor(dias / 365.25) + " anos";
  }

  /* market seconds per real second -> "37 min de mercado por segundo (2.220×)" */
  function velocidadeTexto(x) {
    if (typeof x !== "number" || !isFinite(x) || x <= 0) { return null; }
    var por;
    if (x >= 3600 * 2) { por = numero(x / 3600, 1) + " h"; }
    else if (x >= 120) { por = numero(x / 60, x >= 600 ? 0 : 1) + " min"; }
    else { por = numero(x, x >= 10 ? 0 : 1) + " s"; }
    return por + " de mercado por segundo (" + numero(x, x >= 10 ? 0 : 1) + "×)";
  }

  /* the newest price time (ms) the page knows: its own ticks, then the status' per coin */
  function ultimoPrecoMs(status, vivo) {
    var melhor = typeof vivo.ultimo_preco === "number" ? vivo.ultimo_preco : null;
    [vivo.fonte && vivo.fonte.ultimo_preco_em, status.ultimo_preco_em].forEach(function (mapa) {
      Object.keys(mapa || {}).forEach(function (moeda) {
        var t = Date.parse(mapa[moeda]);
        if (isFinite(t) && (melhor === null || t > melhor)) { melhor = t; }
      });
    });
    return melhor;
  }

  var NOMES_TAREFAS = {fonte: "fonte de preços", source: "fonte de preços",
    checkpoints: "salvamento do modelo", checkpoint: "salvamento do modelo",
    pulsacao: "pulsação do stream", ping: "pulsação do stream", encerramento: "encerramento",
    alertas: "alertas", alerts: "alertas"};

  function nomeTarefa(nome) {
    var chave = String(nome).toLowerCase().replace(/^(engine|motor)[-_.]/, "");
    return NOMES_TAREFAS[chave] || String(nome);
  }

  /* The engine's state (/status "motor"): null while it is not known. */
  function seloMotor(motor, cfg) {
    if (!motor || typeof motor !== "object") { return null; }
    var tarefas = motor.tarefas || {};
    var falhas = [], reinicios = [];
    Object.keys(tarefas).forEach(function (nome) {
      var t = tarefas[nome] || {};
      if (t.estado === "falhou") { falhas.push(nome); }
      else if (t.estado === "reiniciando") { reinicios.push(nome); }
    });
    var problema = falhas.concat(reinicios);
    var detalhe = problema.map(function (nome) {
      var t = tarefas[nome];
      return nomeTarefa(nome) + ": " + (t.estado === "falhou" ? "falhou" : "reiniciando") +
        (t.ultimo_erro ? " — " + t.ultimo_erro : "") +
        (t.erro_em ? " (" + dataHora(t.erro_em) + ")" : "") +
        (typeof t.erros === "number" && t.erros ? " · " + numero(t.erros, 0) + " erro" +
          (t.erros === 1 ? "" : "s") : "");
    }).join("; ");
    var texto, classe;
    if (motor.aprendendo === false || falhas.length) {
      texto = "Motor parado: " + (falhas.length ? falhas.map(nomeTarefa).join(", ") +
        (falhas.length === 1 ? " falhou" : " falharam")
        : (motor.motivo && motor.motivo !== "aprendendo" ? motor.motivo : "não está aprendendo"));
      classe = "erro";
    } else if (reinicios.length) {
      texto = "Motor reiniciando: " + reinicios.map(nomeTarefa).join(", ");
      classe = "atencao";
    } else {
      texto = "Motor aprendendo";
      classe = "ok";
    }
    var partes = [h("Span", {className: "selo " + classe, id: "selo-motor",
      title: detalhe || "Todas as tarefas do motor funcionam."}, texto)];
    if (detalhe) {
      partes.push(h("Span", {className: "faixa-item faixa-erro", id: "motor-erro"}, detalhe));
    }
    return partes;
  }

  function faixa(status, vivo, cfg) {
    if (!cfg) { return []; }
    var s = status || {};
    var v = vivo || {};
    var estado = (v.fonte && v.fonte.fonte) || s.fonte;
    var mensagem = (v.fonte && v.fonte.mensagem) || s.mensagem || "";
    var reproducao = ehReproducao(s.tipo);
    var rotulo = ESTADOS_FONTE[estado] ||
      [estado ? "Fonte: " + estado : "Sem fonte de preços", "atencao"];
    var agora = typeof v.agora === "number" ? v.agora : Date.now();
    var ultimo = ultimoPrecoMs(s, v);
    var idade = ultimo === null ? null : agora - ultimo;
    var atrasado = !reproducao && idade !== null && idade > cfg.atraso_max_s * 1000;
    if (estado === "live" && reproducao) {
      rotulo = ["Reproduzindo o histórico", "ok"];
    } else if (estado === "live" && atrasado) {
      rotulo = ["Dados atrasados", "atencao"];
    }
    if (v.conexao === "reconectando") {
      rotulo = ["Reconectando ao servidor…", "erro"];
    } else if (!v.conexao || v.conexao === "conectando") {
      rotulo = ["Conectando…", "atencao"];
    }
    var explica = atrasado && estado === "live"
      ? "O último preço tem mais de " + idadeTexto(cfg.atraso_max_s * 1000).slice(4) +
        ": a fonte responde, mas os dados não são recentes."
      : mensagem;
    var partes = [h("Span", {className: "selo " + rotulo[1], id: "selo-fonte", title: explica},
      rotulo[0])];
    var motor = seloMotor(v.motor, cfg);
    if (motor) { partes = partes.concat(motor); }
    var tipo = tipoFonte(s.tipo);
    if (tipo) { partes.push(h("Span", {className: "faixa-item", id: "tipo-fonte"}, tipo)); }
    if (ultimo !== null) {
      var quando = reproducao
        ? "Mercado em " + dataHoraNoFuso(ultimo, cfg.fuso)
        : "Último preço " + idadeTexto(idade) + " (" + (idade > 20 * 3600 * 1000
          ? dataHoraNoFuso(ultimo, cfg.fuso) : "às " + horaNoFuso(ultimo, cfg.fuso)) +
          ", horário de " + cfg.fuso_nome + ")";
      partes.push(h("Span", {className: "faixa-item faixa-hora" + (atrasado ? " atrasado" : ""),
        id: "idade-preco"}, quando));
    }
    if (reproducao) {
      var velocidade = velocidadeTexto(typeof v.velocidade === "number" ? v.velocidade
        : s.velocidade_real);
      partes.push(h("Span", {className: "faixa-item", id: "velocidade",
        title: "Quanto tempo de mercado a reprodução avança por segundo de relógio, medido " +
          "pelos preços que chegam a esta página."},
        velocidade ? "Velocidade real: " + velocidade : "Velocidade real: medindo…"));
    }
    /* credits: the live status event's if it carries them, else the page's snapshot */
    var creditos = v.fonte && typeof v.fonte.orcamento_creditos === "number" ? v.fonte : s;
    if (creditos.orcamento_creditos) {
      var restam = Math.max(0, creditos.orcamento_creditos - (creditos.creditos_usados_mes || 0));
      partes.push(h("Span", {className: "faixa-item", id: "orcamento"}, "Orçamento: restam " +
        numero(restam, 0) + " de " + numero(creditos.orcamento_creditos, 0) +
        " créditos no mês"));
    }
    return partes;
  }

  /* the EWMA-Gaussian reference: `ewma` on its own, or (older servers) among the candidates */
  function referencia(m) { return m.ewma || (m.candidatos || {}).ewma || null; }

  var NIVEIS = [5, 10, 25, 50, 75, 90, 95];
  var QUANTIS = ["q05", "q10", "q25", "q50", "q75", "q90", "q95"];
  var EIXO = {gridcolor: "rgba(139, 148, 158, 0.16)", linecolor: "rgba(139, 148, 158, 0.16)",
    zeroline: false, range: [0, 100], tickmode: "array", tickvals: [0, 25, 50, 75, 100],
    ticktext: ["0%", "25%", "50%", "75%", "100%"], tickfont: {color: "#8b949e"},
    automargin: true, fixedrange: true};

  /* Each quantile's realised frequency (the metrics' cobertura_quantis) against its level. */
  function calibracao(metricas, cfg) {
    var m = metricas || {};
    function serie(nome, v, cor, simbolo, traco) {
      var cq = v && v.cobertura_quantis;
      if (!cq) { return null; }
      return {type: "scatter", mode: "lines+markers", name: nome, x: NIVEIS,
        y: QUANTIS.map(function (q) { return typeof cq[q] === "number" ? cq[q] * 100 : null; }),
        line: {color: cor, width: 2, dash: traco},
        marker: {size: 9, symbol: simbolo, color: cor, line: {color: cor, width: 2}},
        hovertemplate: nome + ": quantil de %{x}% → preço real abaixo dele em %{y:.1f}%" +
          "<extra></extra>"};
    }
    /* the reference first (hollow, dashed), so the published one stays visible on top */
    var series = [serie("Referência EWMA", referencia(m), "#58a6ff",
      "diamond-open", "dot"), serie("Publicado", m.publicado, "#e3b341", "circle")]
      .filter(Boolean);
    var dados = [{type: "scatter", mode: "lines", name: "Calibrado (diagonal)", x: [0, 100],
      y: [0, 100], line: {color: "rgba(139, 148, 158, 0.6)", dash: "dash", width: 1},
      hoverinfo: "skip"}].concat(series);
    var layout = {paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "rgba(0,0,0,0)",
      font: {family: "Inter, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif",
        color: "#e6edf3", size: 12},
      margin: {l: 8, r: 8, t: 8, b: 8}, separators: ",.", hovermode: "closest",
      legend: {orientation: "h", x: 0, y: 1.0, yanchor: "bottom", bgcolor: "rgba(0,0,0,0)",
        font: {size: 11, color: "#8b949e"}},
      xaxis: Object.assign({title: {text: "nível do quantil", font: {size: 11,
        color: "#8b949e"}}}, EIXO),
      yaxis: Object.assign({side: "right", title: {text: "preços reais abaixo dele",
        font: {size: 11, color: "#8b949e"}}}, EIXO),
      meta: {calibracao: series.length}};
    if (!series.length) {
      layout.annotations = [{text: "Aguardando os primeiros resultados conferidos.",
        xref: "paper", yref: "paper", x: 0.5, y: 0.5, showarrow: false,
        font: {color: "#8b949e", size: 13}}];
    }
    return {data: dados, layout: layout};
  }

  window.dash_clientside = window.dash_clientside || {};
  window.dash_clientside.painel = Object.assign(window.dash_clientside.painel || {}, {
    calibracao: calibracao,
    cartoes: cartoes,
    faixa: faixa
  });
  window.cryptotechFormatos = {idade: idadeTexto, velocidade: velocidadeTexto,
    tipoFonte: tipoFonte};
}());
