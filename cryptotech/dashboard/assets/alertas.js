/*
 * CryptoTech · alertas no painel (loaded by Dash from the assets folder, beside painel.js).
 *
 * Fills the #alertas container of the layout: the recent alerts (GET /alertas at start,
 * then every `alerta` event live, without reload), a toast for each new one, and the rules
 * (GET /alertas/regras). With the operator's token typed in the page (kept only in this
 * tab's memory, never stored), rules can be created and deleted (POST / DELETE
 * /alertas/regras, header Authorization: Bearer <token>).
 *
 * It opens its own EventSource on /stream (live events; the browser resumes it with
 * Last-Event-ID after a restart), so it does not depend on painel.js's internals.
 *
 * The toasts (bottom right) let clicks through and, while shown, add their height of room at
 * the page's end, so they never keep the user from the rules form (see alertas.css).
 *
 * window.cryptotechAlertas exposes the alerts shown (tests).
 */
(function () {
  "use strict";

  var MAX_LISTA = 30;
  var TOAST_MS = 8000;
  var a = {iniciado: false, es: null, itens: [], ids: {}, token: "", regras: []};

  function el(tag, attrs, filhos) {
    var n = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) {
      if (k === "texto") { n.textContent = attrs[k]; } else { n.setAttribute(k, attrs[k]); }
    });
    (filhos || []).forEach(function (f) { if (f) { n.appendChild(f); } });
    return n;
  }

  function hora(iso) {
    var d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString("pt-BR", {dateStyle: "short", timeStyle: "short"});
  }

  function linha(al) {
    var moeda = al.moeda ? al.moeda.toUpperCase() + " · " : "";
    return el("li", {"class": "alerta-item", "data-id": String(al.id)}, [
      el("strong", {texto: moeda + al.regra}),
      el("span", {"class": "alerta-msg", texto: " " + al.mensagem}),
      el("time", {"class": "nota", texto: " " + hora(al.horario)})
    ]);
  }

  function desenharLista() {
    var ul = document.getElementById("alertas-lista");
    if (!ul) { return; }
    ul.textContent = "";
    if (!a.itens.length) {
      ul.appendChild(el("li", {"class": "nota", texto: "Nenhum alerta disparado ainda."}));
    }
    a.itens.forEach(function (al) { ul.appendChild(linha(al)); });
  }

  function toast(al) {
    var caixa = document.getElementById("alertas-toasts");
    if (!caixa) { return; }
    var t = el("div", {"class": "alerta-toast", role: "status"}, [
      el("strong", {texto: "Alerta" + (al.moeda ? " · " + al.moeda.toUpperCase() : "")}),
      el("div", {texto: al.regra + ": " + al.mensagem})
    ]);
    caixa.appendChild(t);
    folga(caixa);
    setTimeout(function () {
      if (t.parentNode) { t.parentNode.removeChild(t); }
      folga(caixa);
    }, TOAST_MS);
  }

  /* room at the page's end as tall as the toasts: the page can be scrolled until the rules
     form (the last section) is above them instead of under them */
  function folga(caixa) {
    var altura = caixa.children.length ? caixa.offsetHeight + 16 : 0;
    document.body.style.paddingBottom = altura ? altura + "px" : "";
  }

  function adicionar(al, novo) {
    if (a.ids[al.id]) { return; }
    a.ids[al.id] = true;
    a.itens.unshift(al);
    a.itens.sort(function (x, y) { return y.id - x.id; });
    if (a.itens.length > MAX_LISTA) { a.itens.length = MAX_LISTA; }
    desenharLista();
    if (novo) { toast(al); }
  }

  function pedir(metodo, url, corpo) {
    var opcoes = {method: metodo, headers: {}};
    var campo = document.getElementById("alertas-token");
    if (campo) { a.token = campo.value; }
    if (a.token) { opcoes.headers.Authorization = "Bearer " + a.token; }
    if (corpo) {
      opcoes.headers["Content-Type"] = "application/json";
      opcoes.body = JSON.stringify(corpo);
    }
    return fetch(url, opcoes).then(function (r) {
      if (r.status === 204) { return null; }
      return r.json().then(function (j) {
        if (!r.ok) { throw new Error(j.detalhe || ("erro " + r.status)); }
        return j;
      });
    });
  }

  function aviso(texto) {
    var p = document.getElementById("alertas-aviso");
    if (p) { p.textContent = texto; }
  }

  function carregarRegras() {
    pedir("GET", "/alertas/regras").then(function (j) {
      a.regras = j.regras;
      var ul = document.getElementById("alertas-regras");
      if (!ul) { return; }
      ul.textContent = "";
      j.regras.forEach(function (r) {
        var li = el("li", {"class": "alerta-regra"}, [
          el("code", {texto: r.id}),
          el("span", {texto: " " + r.descricao + (r.pausada ? " (pausada)" : "")})
        ]);
        if (r.origem === "api" && j.escrita_habilitada) {
          var b = el("button", {"class": "botao", type: "button", texto: "apagar"});
          b.addEventListener("click", function () {
            pedir("DELETE", "/alertas/regras/" + encodeURIComponent(r.id))
              .then(carregarRegras).catch(function (e) { aviso(e.message); });
          });
          li.appendChild(b);
        }
        ul.appendChild(li);
      });
      var form = document.getElementById("alertas-form");
      if (form) { form.hidden = !j.escrita_habilitada; }
    }).catch(function (e) { aviso(e.message); });
  }

  function formulario() {
    var form = el("form", {id: "alertas-form", "class": "alertas-form", hidden: ""}, [
      el("input", {id: "alertas-token", type: "password", placeholder: "token do operador",
        autocomplete: "off", "aria-label": "Token"}),
      el("input", {id: "alertas-regra", type: "text", "aria-label": "Regra (JSON)",
        placeholder: '{"tipo": "preco_acima", "moeda": "btc", "preco": 120000}'}),
      el("button", {"class": "botao", type: "submit", texto: "criar regra"})
    ]);
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      var corpo;
      try { corpo = JSON.parse(document.getElementById("alertas-regra").value); }
      catch (e) { aviso("regra inválida: escreva um objeto JSON"); return; }
      pedir("POST", "/alertas/regras", corpo).then(function () {
        aviso("regra criada");
        carregarRegras();
      }).catch(function (e) { aviso(e.message); });
    });
    return form;
  }

  function montar(caixa) {
    caixa.appendChild(el("h2", {texto: "Alertas"}));
    caixa.appendChild(el("ul", {id: "alertas-lista", "class": "alertas-lista",
      "aria-live": "polite"}));
    caixa.appendChild(el("h3", {texto: "Regras"}));
    caixa.appendChild(el("ul", {id: "alertas-regras", "class": "alertas-regras"}));
    caixa.appendChild(formulario());
    caixa.appendChild(el("p", {id: "alertas-aviso", "class": "nota"}));
    document.body.appendChild(el("div", {id: "alertas-toasts", "class": "alertas-toasts"}));
  }

  /* live events from now on (the browser resumes with Last-Event-ID on its own); the
     history comes from GET /alertas, and an alert in both is shown once (by id) */
  function conectar() {
    var es = new EventSource("/stream");
    a.es = es;
    es.addEventListener("alerta", function (ev) {
      try { adicionar(JSON.parse(ev.data), true); } catch (e) { /* ignore a bad event */ }
    });
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) {
        es.close();
        setTimeout(function () { conectar(); carregarHistorico(); }, 3000);
      }
    };
  }

  function iniciar() {
    var caixa = document.getElementById("alertas");
    if (!caixa || a.iniciado) { return; }
    a.iniciado = true;
    montar(caixa);
    conectar();
    carregarHistorico();
    carregarRegras();
  }

  function carregarHistorico() {
    pedir("GET", "/alertas?limite=" + MAX_LISTA).then(function (j) {
      j.itens.forEach(function (al) { adicionar(al, false); });
      desenharLista();
    }).catch(function (e) { aviso(e.message); });
  }

  /* the layout is drawn by React after the scripts load: wait for the container */
  var tentativas = 0;
  (function esperar() {
    if (document.getElementById("alertas")) { iniciar(); return; }
    if (tentativas++ < 600) { setTimeout(esperar, 100); }
  }());

  window.cryptotechAlertas = {
    itens: function () { return a.itens.slice(); }
  };
}());
