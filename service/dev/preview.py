"""Development-only card preview page: pick a scenario (or paste a request), run it, see the cards
as an EHR shows them.

Registered only when BONECDS_AUTH is "dev" or "off", never "on". `GET /preview` is one self-
contained HTML page (inline CSS and JS, no external resources); `/preview/scenarios` lists the
fixture scenarios and `/preview/scenarios/<name>` gives a scenario's full CDS Hooks request. In dev
mode `/preview/token` mints a short-lived JWT with the local dev key so the page can call the
(authenticated) CDS endpoints.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any

import orjson
from flask import Blueprint, Flask, Response, abort, current_app, request

from service.auth import DEV_ISSUER, load_or_create_dev_key, mint_token

bp = Blueprint("preview", __name__)
log = logging.getLogger("bonecds.preview")
MODES = ("dev", "off")


def register_if_enabled(app: Flask) -> None:
    """Adds the preview page in development modes only (auth "dev" or "off")."""
    if app.extensions["bonecds"].settings.auth in MODES:
        app.register_blueprint(bp)
        log.warning(
            "card preview page /preview is ON (BONECDS_AUTH=%s): development only",
            app.extensions["bonecds"].settings.auth,
        )


def _json(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype="application/json")


@lru_cache(maxsize=1)
def _scenarios() -> dict[str, Any]:
    from fixtures.scenarios import (
        all_scenarios,
    )  # test fixtures: imported only when the page is used

    return {s.name: s for s in all_scenarios()}


@bp.get("/preview")
def page() -> Response:
    response = Response(
        PAGE.replace("__AUTH__", current_app.extensions["bonecds"].settings.auth),
        mimetype="text/html",
    )
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'unsafe-inline'; "
        "style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:"
    )
    return response


@bp.get("/preview/scenarios")
def scenarios() -> Response:
    return _json(
        [
            {"name": s.name, "hook": s.hook, "service": s.service_id, "description": s.description}
            for s in _scenarios().values()
        ]
    )


@bp.get("/preview/scenarios/<name>")
def scenario_request_json(name: str) -> Response:
    from fixtures.prefetch import scenario_request, transaction_resources

    found = _scenarios().get(name)
    if found is None:
        abort(404)
    service = current_app.extensions["bonecds"].services[found.service_id]
    body = scenario_request(
        service, found, resources=transaction_resources(found.patient.transaction())
    )
    return _json({"service": found.service_id, "request": body})


@bp.get("/preview/token")
def token() -> Response:
    settings = current_app.extensions["bonecds"].settings
    if settings.auth != "dev":
        abort(404)
    aud = request.args.get("aud", "")
    if not aud.startswith("/cds-services"):
        return _json({"error": "aud must be a /cds-services path"}, 400)
    base = settings.public_base_url or request.host_url.rstrip("/")
    key = load_or_create_dev_key(settings.dev_key_path)
    return _json(
        {"token": mint_token(key.private_jwk, DEV_ISSUER, base + aud, lifetime_seconds=120)}
    )


PAGE = r"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>bonecds card preview</title>
<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f3f4f6;color:#1f2937}
header{background:#1e3a5f;color:#fff;padding:12px 20px;font-size:18px}
main{display:flex;gap:20px;padding:20px;align-items:flex-start}
#left{flex:1;min-width:320px}#right{flex:1;min-width:360px}
select,textarea,button{font:inherit}
select{width:100%;padding:6px;margin-bottom:6px}
textarea{width:100%;height:420px;font-family:ui-monospace,monospace;font-size:12px;box-sizing:border-box}
#desc{font-size:13px;color:#4b5563;min-height:2em}
button{cursor:pointer;border:1px solid #1e3a5f;background:#1e3a5f;color:#fff;border-radius:4px;padding:6px 14px;margin:4px 4px 0 0}
button.suggestion{background:#fff;color:#1e3a5f}
.card{background:#fff;border:1px solid #d1d5db;border-left:6px solid #9ca3af;border-radius:4px;padding:12px 16px;margin-bottom:14px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
.indicator-info{border-left-color:#2563eb}.indicator-warning{border-left-color:#ea580c}.indicator-critical{border-left-color:#dc2626}
.summary{font-weight:600;font-size:16px;margin-bottom:6px}
.indicator{font-size:11px;text-transform:uppercase;letter-spacing:.05em;color:#6b7280}
.detail p{margin:6px 0}.detail ul{margin:6px 0 6px 20px;padding:0}
.source{font-size:12px;color:#4b5563;margin-top:8px}
.feedback-sent{color:#15803d;font-weight:600;margin-left:8px}
#status{font-size:13px;margin:8px 0;color:#374151}.error{color:#b91c1c}
.empty{color:#6b7280;font-style:italic}
</style></head>
<body><header>bonecds &mdash; card preview (development)</header>
<main><section id="left">
<label for="scenario">Scenario</label>
<select id="scenario"><option value="">(paste a request below)</option></select>
<div id="desc"></div>
<label for="service">Service</label>
<select id="service"><option>bonecds-order-sign</option><option>bonecds-order-select</option><option>bonecds-patient-view</option></select>
<label for="request">CDS Hooks request</label>
<textarea id="request" spellcheck="false"></textarea>
<button id="run" type="button">Run</button>
</section>
<section id="right"><div id="status"></div><div id="cards"></div></section></main>
<script>
"use strict";
const AUTH = "__AUTH__";
const $ = (id) => document.getElementById(id);
function escapeHtml(s){return String(s).replace(/&/g,"&amp;").replace(/</g,"&lt;").replace(/>/g,"&gt;").replace(/"/g,"&quot;").replace(/'/g,"&#39;");}
function inline(escaped){
  return escaped.replace(/`([^`]+)`/g,"<code>$1</code>")
    .replace(/\*\*([^*]+)\*\*/g,"<strong>$1</strong>")
    .replace(/\*([^*]+)\*/g,"<em>$1</em>");
}
// A tiny safe markdown renderer: the text is HTML-escaped first, then only our own tags are added.
function renderMarkdown(md){
  const blocks = escapeHtml(md||"").split(/\n\s*\n/);
  const out = [];
  for (const block of blocks){
    const lines = block.split("\n").filter(l => l.trim() !== "");
    if (!lines.length) continue;
    if (lines.every(l => /^\s*- /.test(l))){
      out.push("<ul>" + lines.map(l => "<li>" + inline(l.replace(/^\s*- /,"")) + "</li>").join("") + "</ul>");
    } else {
      out.push("<p>" + inline(lines.join("<br>")) + "</p>");
    }
  }
  return out.join("");
}
async function authHeaders(path){
  const h = {"Content-Type":"application/json"};
  if (AUTH === "dev"){
    const r = await fetch("/preview/token?aud=" + encodeURIComponent(path));
    h["Authorization"] = "Bearer " + (await r.json()).token;
  }
  return h;
}
async function post(path, body){
  const r = await fetch(path, {method:"POST", headers: await authHeaders(path), body: JSON.stringify(body)});
  const text = await r.text();
  let data = null; try { data = JSON.parse(text); } catch (e) { data = text; }
  return {status: r.status, data};
}
function el(tag, cls, text){const e=document.createElement(tag); if(cls) e.className=cls; if(text!==undefined) e.textContent=text; return e;}
function renderCard(card, serviceId){
  const box = el("div", "card indicator-" + (card.indicator || "info"));
  const topic = card.source && card.source.topic;
  box.dataset.rule = (topic && topic.code) || "";
  box.appendChild(el("div", "indicator", card.indicator || ""));
  box.appendChild(el("div", "summary", card.summary || ""));
  const detail = el("div", "detail"); detail.innerHTML = renderMarkdown(card.detail); box.appendChild(detail);
  if (card.source){
    const src = el("div", "source", "Source: ");
    if (card.source.url && /^https?:\/\//.test(card.source.url)){
      const a = el("a", null, card.source.label || card.source.url); a.href = card.source.url; a.target = "_blank"; a.rel = "noopener noreferrer";
      src.appendChild(a);
    } else { src.appendChild(document.createTextNode(card.source.label || "")); }
    box.appendChild(src);
  }
  const actions = el("div", "actions");
  for (const s of (card.suggestions || [])){
    const b = el("button", "suggestion", s.label || "Accept"); b.type = "button"; b.dataset.suggestion = s.uuid || "";
    b.addEventListener("click", async () => {
      const path = "/cds-services/" + serviceId + "/feedback";
      const r = await post(path, {feedback:[{card: card.uuid, outcome:"accepted", acceptedSuggestions:[{id: s.uuid}],
                                             outcomeTimestamp: new Date().toISOString()}]});
      const note = el("span", r.status === 200 ? "feedback-sent" : "error",
                      r.status === 200 ? "Feedback sent" : "Feedback failed (HTTP " + r.status + ")");
      actions.appendChild(note);
    });
    actions.appendChild(b);
  }
  box.appendChild(actions);
  return box;
}
async function run(){
  const cards = $("cards"); cards.textContent = ""; $("status").textContent = "Running…"; $("status").className = "";
  let body;
  try { body = JSON.parse($("request").value); } catch (e) { $("status").textContent = "Invalid JSON: " + e.message; $("status").className = "error"; return; }
  const serviceId = $("service").value;
  const r = await post("/cds-services/" + serviceId, body);
  if (r.status !== 200){ $("status").textContent = "HTTP " + r.status; $("status").className = "error";
    const pre = el("pre", "error", typeof r.data === "string" ? r.data : JSON.stringify(r.data, null, 2)); cards.appendChild(pre); return; }
  const list = (r.data && r.data.cards) || [];
  $("status").textContent = list.length + " card(s) from " + serviceId;
  if (!list.length) cards.appendChild(el("div", "empty", "No cards"));
  for (const c of list) cards.appendChild(renderCard(c, serviceId));
}
async function loadScenario(name){
  $("desc").textContent = ""; if (!name) return;
  const r = await fetch("/preview/scenarios/" + encodeURIComponent(name));
  const d = await r.json();
  $("service").value = d.service; $("request").value = JSON.stringify(d.request, null, 2);
  const opt = $("scenario").selectedOptions[0]; $("desc").textContent = opt ? opt.title : "";
  document.body.dataset.loaded = name;
}
async function init(){
  const list = await (await fetch("/preview/scenarios")).json();
  for (const s of list){ const o = el("option", null, s.name + " (" + s.hook + ")"); o.value = s.name; o.title = s.description; $("scenario").appendChild(o); }
  $("scenario").addEventListener("change", () => loadScenario($("scenario").value));
  $("run").addEventListener("click", run);
  document.body.dataset.ready = "1";
}
init();
</script></body></html>
"""
