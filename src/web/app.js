// The log page: load matching lines, then (if Live) append new ones as they arrive.
"use strict";
const LEVELS = ["emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"];
const $ = (id) => document.getElementById(id);
let source = null;
// From the console: `?instance=…` opens that instance, `&at=µs` the lines around a crash.
const asked = new URLSearchParams(location.search);

function params() {
  const p = new URLSearchParams();
  for (const k of ["instance", "level", "q"]) if ($(k).value) p.set(k, $(k).value);
  return p;
}

function row(e, fresh) {
  const tr = document.createElement("tr");
  tr.className = "l" + e.level + (fresh ? " new" : "");
  const t = new Date(e.t / 1000);
  const cells = [
    ["t", t.toLocaleDateString() + " " + t.toLocaleTimeString() + "." + String(t.getMilliseconds()).padStart(3, "0")],
    ["i", e.instance],
    ["l", LEVELS[e.level] || e.level],
    ["m", e.msg],
  ];
  for (const [cls, text] of cells) {
    const td = document.createElement("td");
    td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
  }
  return tr;
}

function state(text) { $("state").textContent = text; }

async function load() {
  if (source) { source.close(); source = null; }
  const p = params();
  if (asked.get("at")) p.set("at", asked.get("at"));
  else if ($("since").value) p.set("since", $("since").value);
  state("loading…");
  const r = await fetch("/api/logs?" + p);
  if (r.status === 401) { location.href = "/login"; return; }
  const body = await r.json();
  const tbody = $("lines");
  tbody.replaceChildren();
  if (!r.ok) { state(body.error || r.statusText); return; }
  for (const e of body) tbody.appendChild(row(e, false));
  $("empty").hidden = body.length > 0;
  window.scrollTo(0, document.body.scrollHeight);
  if ($("live").checked) live(); else state(body.length + " lines");
}

function live() {
  source = new EventSource("/api/tail?" + params());
  source.onopen = () => state("live");
  source.onerror = () => state("reconnecting…");
  source.onmessage = (m) => {
    const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 40;
    $("lines").appendChild(row(JSON.parse(m.data), true));
    $("empty").hidden = true;
    if (atBottom) window.scrollTo(0, document.body.scrollHeight);
  };
}

async function init() {
  const r = await fetch("/api/instances");
  if (r.status === 401) { location.href = "/login"; return; }
  for (const v of await r.json()) {
    const o = document.createElement("option");
    o.value = v.instance;
    o.textContent = v.instance;
    $("instance").appendChild(o);
  }
  if (asked.get("instance")) $("instance").value = asked.get("instance");
  if (asked.get("at")) {
    // Around a moment: everything, no live tail; changing the view leaves the moment.
    $("level").value = "7";
    $("live").checked = false;
    state("around " + new Date(Number(asked.get("at")) / 1000).toLocaleString());
  }
  for (const id of ["instance", "level", "since", "live"]) $(id).addEventListener("change", () => { asked.delete("at"); load(); });
  let timer;
  $("q").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { asked.delete("at"); load(); }, 300); });
  load();
}
init();
