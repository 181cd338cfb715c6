// The console: instances live (server-sent events), actions, deploys, admin views.
// Every value reaches the page through textContent: nothing is parsed as HTML.
"use strict";
const $ = (id) => document.getElementById(id);
const ME = document.body.dataset.me;
const ADMIN = document.body.dataset.role === "admin";
let last = null;        // the previous snapshot (for CPU %)
let receivedAt = 0;     // when the newest snapshot arrived (ms, this clock)
let snapAt = 0;         // its reading time (µs, the server's clock)
let here = null;        // with several hosts, the console's own

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function bytes(b) {
  if (b === null || b === undefined) return "–";
  if (b >= 1 << 30) return (b / (1 << 30)).toFixed(1) + " GiB";
  if (b >= 1 << 20) return (b / (1 << 20)).toFixed(1) + " MiB";
  if (b >= 1024) return (b / 1024).toFixed(0) + " KiB";
  return b + " B";
}

function duration(s) {
  if (s < 0) s = 0;
  if (s >= 86400) return Math.floor(s / 86400) + "d " + Math.floor(s % 86400 / 3600) + "h";
  if (s >= 3600) return Math.floor(s / 3600) + "h " + Math.floor(s % 3600 / 60) + "m";
  if (s >= 60) return Math.floor(s / 60) + "m " + Math.floor(s % 60) + "s";
  return Math.floor(s) + "s";
}

function when(usec) {
  const t = new Date(usec / 1000);
  return t.toLocaleDateString() + " " + t.toLocaleTimeString();
}

// ---- results of actions ----

function showResult(box, ok, lines, journal) {
  box.hidden = false;
  box.className = "result " + (ok ? "ok" : "fail");
  box.replaceChildren();
  for (const l of lines) box.append(el("div", { text: l }));
  for (const j of journal || []) {
    const pre = el("pre", { text: j });
    box.append(pre);
    pre.scrollTop = pre.scrollHeight; // what failed is at the end
  }
}

async function post(path, body) {
  const r = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (r.status === 401) { location.href = "/login"; throw new Error("signed out"); }
  let data = {};
  try { data = await r.json(); } catch (e) { data = { error: r.statusText }; }
  return { status: r.status, data };
}

async function act(verb, target, button) {
  const box = $("result");
  const buttons = [...document.querySelectorAll("button.act")];
  buttons.forEach((b) => (b.disabled = true));
  showResult(box, true, [verb + " " + (target.owner ? "all of " + target.owner + "'s" : target.instances.join(", ")) + "…"]);
  try {
    const { status, data } = await post("/api/act", { verb, ...target });
    if (status !== 200) {
      showResult(box, false, [data.error || "failed (" + status + ")"]);
    } else if (data.host) {
      answered(box, data);
    } else {
      showResult(box, data.ok, data.done.map((d) => (d.ok ? "✓ " : "✗ ") + d.message),
        data.done.filter((d) => d.journal).map((d) => d.journal));
    }
  } catch (e) {
    showResult(box, false, [String(e)]);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
    if (button) button.focus();
  }
}

// What another host answered to an action sent there: its own words.
function answered(box, data) {
  showResult(box, data.ok, ["host " + data.host + " answered:", ...(data.answer ? data.answer.split("\n") : ["(nothing)"])]);
}

// ---- the home page ----

function card(v) {
  const id = "card-" + v.unit;
  let c = document.getElementById(id);
  if (!c) {
    c = el("article", { class: "card", id, "data-instance": v.instance, "aria-label": v.label, "data-host": v.host });
    // Another host's journal is not read here: the link would lead nowhere.
    const remote = v.host && here && v.host !== here;
    const actions = el("div", { class: "actions" },
      el("button", { class: "act restart", text: "Restart", onclick: (e) => act("restart", { instances: [v.instance] }, e.target) }),
      v.kind === "openresty" ? el("button", { class: "act reload", text: "Reload", onclick: (e) => act("reload", { instances: [v.instance] }, e.target) }) : null,
      v.kind === "openresty" ? el("a", { class: "deploys", href: "#deploys/" + encodeURIComponent(v.instance), text: "Deploys" }) : null,
      remote ? el("span", { class: "logs", title: "ssh … logs " + v.instance + " reads them", text: "Logs on " + v.host })
        : el("a", { class: "logs", href: "/logs?instance=" + encodeURIComponent(v.label), text: "Logs" }),
    );
    c.append(
      el("h3", {}, el("span", { class: "name", text: v.label }), el("span", { class: "badge state" })),
      el("dl", {},
        el("dt", { text: "Uptime" }), el("dd", { class: "uptime" }),
        el("dt", { text: "Restarts" }), el("dd", { class: "restarts" }),
        el("dt", { text: "Port" }), el("dd", { class: "port" }),
        el("dt", { text: "Memory" }), el("dd", { class: "memory" }),
        el("dt", { text: "CPU" }), el("dd", { class: "cpu" }),
        el("dt", { text: "PID" }), el("dd", { class: "pid" }),
        el("dt", { text: "Unit" }), el("dd", { class: "unit", text: v.unit }),
        v.host ? el("dt", { text: "Host" }) : null,
        v.host ? el("dd", { class: "host", text: v.host }) : null,
        v.kind === "openresty" ? el("dt", { text: "Live" }) : null,
        v.kind === "openresty" ? el("dd", { class: "live" }) : null,
        v.kind === "openresty" ? el("dt", { text: "Pushed" }) : null,
        v.kind === "openresty" ? el("dd", { class: "pushed" }) : null,
      ),
      el("div", { class: "away", hidden: true }),
      el("div", { class: "exit" }),
      actions,
    );
  }
  const q = (cls) => c.querySelector("." + cls);
  const up = v.active_state === "active";
  const badge = q("state");
  const gone = v.unreachable;
  badge.textContent = gone ? "unreachable" : v.active_state === "active" ? (v.healthy ? "running" : "no answer") : v.active_state + (v.sub_state ? " · " + v.sub_state : "");
  badge.className = "badge state " + (v.healthy ? "up" : !gone && (v.active_state === "activating" || v.active_state === "reloading") ? "busy" : "down");
  c.classList.toggle("unhealthy", !v.healthy);
  c.classList.toggle("unreachable", !!gone);
  const away = q("away");
  away.hidden = !gone;
  away.textContent = gone ? "Host " + v.host + " " + silence(gone) + ": as it last reported (" + v.active_state + "). It keeps running what it runs." : "";
  c.dataset.since = v.since_usec;
  c.dataset.pid = v.main_pid;
  c.dataset.restarts = v.restarts;
  q("uptime").dataset.since = up ? v.since_usec : "";
  q("restarts").textContent = String(v.restarts);
  const port = q("port");
  port.textContent = v.port + (v.port_answers ? " · answers" : " · not answering");
  port.classList.toggle("bad", !v.port_answers);
  q("memory").textContent = bytes(v.memory);
  q("pid").textContent = v.main_pid ? String(v.main_pid) : "–";
  const prev = last && last.get(v.unit);
  let cpu = "–";
  if (prev && v.cpu_usec !== null && prev.cpu_usec !== null && snapAt > prev.at && v.main_pid === prev.pid) {
    cpu = (Math.max(0, v.cpu_usec - prev.cpu_usec) / (snapAt - prev.at) * 100).toFixed(1) + " %";
  } else if (v.cpu_usec !== null) {
    cpu = (v.cpu_usec / 1e6).toFixed(2) + " s in all";
  }
  q("cpu").textContent = cpu;
  if (v.code && q("live")) code(q("live"), q("pushed"), v.code);
  exitBox(q("exit"), v);
  return c;
}

// The live release's commit and the branch head: a head that is not live is marked
// (a push whose deploy failed or was killed; `ssh … deploy` or the next push deploys it).
function code(live, pushed, d) {
  const short = (c) => c ? c.slice(0, 10) : "";
  const ahead = !!d.pushed && !(d.live && d.pushed.startsWith(d.live));
  live.textContent = (d.live ? short(d.live) : "initial") + (d.reload_pending ? " · reload owed" : "");
  pushed.textContent = !d.pushed ? "–" : !ahead ? "= live" : short(d.pushed) + (d.held ? " · held (" + d.held + ")" : " · not live");
  pushed.classList.toggle("bad", ahead && !d.held);
  live.classList.toggle("bad", !!d.reload_pending);
}

// The last crash: reason, time, the journal lines around it (on demand), a link.
function exitBox(box, v) {
  const e = v.last_exit;
  const key = e ? e.t + "" : "";
  if (box.dataset.key === key) return;
  box.dataset.key = key;
  box.replaceChildren();
  if (!e) { box.className = "exit"; return; }
  box.className = "exit crash";
  const logs = "/logs?instance=" + encodeURIComponent(v.label) + "&at=" + e.t;
  const pre = el("pre", { class: "lines", text: "loading…" });
  const details = el("details", {},
    el("summary", {}, el("b", { text: "Last crash: " }), el("span", { class: "reason", text: e.reason }), " · " + when(e.t)),
    pre,
    el("a", { class: "crash-logs", href: logs, text: "These lines in the logs" }),
  );
  details.addEventListener("toggle", async () => {
    if (!details.open || pre.dataset.loaded) return;
    const r = await fetch("/api/around?instance=" + encodeURIComponent(v.instance) + "&at=" + e.t);
    const lines = r.ok ? await r.json() : [];
    pre.dataset.loaded = "1";
    pre.textContent = lines.length ? lines.map((l) => new Date(l.t / 1000).toLocaleTimeString() + " " + l.msg).join("\n") : "(no lines)";
    pre.scrollTop = pre.scrollHeight; // the crash is at the end
  });
  box.append(details);
}

// How long another host has not answered, in words.
function silence(u) {
  return u.since ? "has not answered since " + when(u.since * 1e6) : "has never answered";
}

// Other hosts that do not answer (or are being asked): one line each.
function hosts(o) {
  const box = $("hosts");
  const odd = (o.hosts || []).filter((h) => h.pending || h.unreachable);
  box.hidden = odd.length === 0;
  box.replaceChildren(...odd.map((h) => el("div", { class: "host-state", "data-host": h.name,
    text: h.pending ? "Asking host " + h.name + "…" : "Host " + h.name + " " + silence(h.unreachable) + " (" + h.unreachable.error + "); its instances show as it last reported them." })));
}

function render(o) {
  receivedAt = Date.now();
  snapAt = o.at;
  here = o.here || null;
  hosts(o);
  const groups = $("groups");
  const seen = new Set();
  for (const g of o.groups) {
    const gid = "group-" + g.owner;
    let sec = document.getElementById(gid);
    if (!sec) {
      const mine = g.owner === ME;
      const title = ADMIN ? (mine ? g.owner + " (you)" : g.owner) : "Your instances";
      sec = el("section", { id: gid, class: "group", "data-owner": g.owner },
        el("h2", {}, el("span", { text: title }), el("span", { class: "count" }),
          el("button", { class: "act restart-all", text: (mine || !ADMIN) ? "Restart all of mine" : "Restart all of " + g.owner + "'s",
            onclick: (e) => act("restart", { owner: g.owner }, e.target) }),
          el("button", { class: "act reload-all", text: (mine || !ADMIN) ? "Reload all of mine" : "Reload all of " + g.owner + "'s",
            onclick: (e) => act("reload", { owner: g.owner }, e.target) })),
        el("div", { class: "cards" }));
      groups.append(sec);
    }
    seen.add(gid);
    const healthy = g.instances.filter((v) => v.healthy).length;
    sec.querySelector(".count").textContent = healthy + " of " + g.instances.length + " healthy";
    const cards = sec.querySelector(".cards");
    g.instances.forEach((v, i) => {
      const c = card(v);
      if (cards.children[i] !== c) cards.insertBefore(c, cards.children[i] || null);
    });
  }
  for (const sec of [...groups.children]) if (!seen.has(sec.id)) sec.remove();
  $("none").hidden = o.groups.length > 0;
  last = new Map(o.groups.flatMap((g) => g.instances).map((v) => [v.unit, { cpu_usec: v.cpu_usec, at: o.at, pid: v.main_pid }]));
  $("live").textContent = o.error ? "could not read: " + o.error : "live · " + new Date(o.at / 1000).toLocaleTimeString();
  tick();
}

// Uptimes count on between readings.
function tick() {
  const nowUsec = snapAt + (Date.now() - receivedAt) * 1000;
  for (const u of document.querySelectorAll("dd.uptime")) {
    const since = Number(u.dataset.since);
    u.textContent = since ? duration((nowUsec - since) / 1e6) : "–";
    u.dataset.secs = since ? Math.floor((nowUsec - since) / 1e6) : "";
  }
}

function watch() {
  const source = new EventSource("/api/events");
  source.onmessage = (m) => render(JSON.parse(m.data));
  source.onerror = () => { $("live").textContent = "reconnecting…"; };
}

// ---- deploys ----

async function deploys(instance) {
  $("deploys-title").textContent = "Deploys of " + instance;
  $("deploys-logs").href = "/logs?instance=" + encodeURIComponent(instance);
  const tbody = $("releases");
  tbody.replaceChildren(el("tr", {}, el("td", { colspan: "10", class: "empty", text: "loading…" })));
  const r = await fetch("/api/releases?instance=" + encodeURIComponent(instance));
  const data = await r.json();
  tbody.replaceChildren();
  if (!r.ok) {
    showResult($("deploy-result"), false, [data.error || r.statusText]);
    return;
  }
  const liveAt = data.findIndex((rel) => rel.live);
  data.forEach((rel, i) => {
    const cell = (label, text, cls) => el("td", { "data-label": label, class: cls || null, text: text === null || text === undefined ? "–" : String(text) });
    const button = rel.live ? el("span", { class: "badge up", text: "live" }) :
      el("button", { class: "act rollback", text: liveAt >= 0 && i < liveAt ? "Make live again" : "Roll back to this", "data-release": rel.id,
        onclick: (e) => rollback(instance, rel.id, e.target) });
    tbody.append(el("tr", { class: rel.live ? "live" : null, "data-release": rel.id },
      el("td", {}, rel.live ? el("span", { "aria-label": "live", text: "●" }) : null),
      cell("Release", rel.id, "mono"),
      cell("Commit", rel.commit ? rel.commit.slice(0, 10) : null, "mono"),
      cell("Subject", rel.subject, "subject"),
      cell("Author", rel.author),
      cell("Pushed by", rel.pusher, "pusher"),
      cell("When", rel.when ? when(rel.when * 1e6) : null),
      cell("Files", rel.files),
      cell("Size", bytes(rel.bytes)),
      el("td", {}, button)));
  });
}

async function rollback(instance, to, button) {
  const box = $("deploy-result");
  document.querySelectorAll("button.rollback").forEach((b) => (b.disabled = true));
  showResult(box, true, ["rolling " + instance + " back to " + to + "…"]);
  try {
    const { status, data } = await post("/api/rollback", { instance, to });
    if (status !== 200) {
      showResult(box, false, [data.error || "failed (" + status + ")"]);
    } else if (data.host) {
      answered(box, data);
    } else {
      const r = data.rollback;
      showResult(box, data.ok, [instance + ": release " + r.from + " → " + r.to, (r.reload.ok ? "✓ " : "✗ ") + r.reload.message],
        r.reload.journal ? [r.reload.journal] : []);
    }
  } catch (e) {
    showResult(box, false, [String(e)]);
  }
  await deploys(instance);
  $("releases").querySelector("tr.live button, tr.live span")?.focus();
  if (button && button.isConnected) button.focus();
}

// ---- admin ----

async function admin() {
  const r = await fetch("/api/admin/apply");
  const a = await r.json();
  const kv = $("apply");
  kv.replaceChildren();
  if (!r.ok) { kv.append(el("dt", { text: "error" }), el("dd", { text: a.error })); return; }
  const row = (k, v, cls) => kv.append(el("dt", { text: k }), el("dd", { class: cls || null, text: v === null || v === undefined ? "–" : String(v) }));
  row("Result", a.result, "apply-result" + (a.result === "failed" ? " bad" : ""));
  row("Commit", a.commit ? a.commit.slice(0, 12) : null, "apply-commit");
  row("Subject", a.subject);
  row("When", a.when ? when(a.when * 1e6) : null);
  $("apply-output").textContent = a.output || "(no output recorded: nothing was pushed to serverctrl since boot)";
}

async function plan() {
  const out = $("plan");
  out.hidden = false;
  out.textContent = "running hhlctl plan…";
  const r = await fetch("/api/admin/plan");
  const p = await r.json();
  out.textContent = r.ok ? (p.ok ? "" : "hhlctl plan failed:\n") + p.output : (p.error || r.statusText);
}

// ---- pages ----

function route() {
  const h = decodeURIComponent(location.hash.slice(1));
  const page = h.startsWith("deploys/") ? "deploys" : h === "admin" && ADMIN ? "admin" : "home";
  for (const id of ["home", "deploys", "admin"]) $(id).hidden = id !== page;
  $("nav-home").toggleAttribute("aria-current", page === "home");
  if (page === "home") $("nav-home").setAttribute("aria-current", "page");
  if (page === "admin") { $("nav-admin").setAttribute("aria-current", "page"); admin(); } else $("nav-admin").removeAttribute("aria-current");
  if (page === "deploys") { $("deploy-result").hidden = true; deploys(h.slice("deploys/".length)); }
  document.title = "hhl console" + (page === "home" ? "" : " · " + page);
}

$("nav-admin").hidden = !ADMIN;
$("run-plan").addEventListener("click", plan);
window.addEventListener("hashchange", route);
setInterval(tick, 1000);
route();
watch();
