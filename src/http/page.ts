// The dashboard: one page, plain HTML with a little inline CSS and script — no build step, no
// external font, script or stylesheet. It reads /api/status every few seconds and redraws only
// the data (no reload); everything from the server is inserted as text, never as HTML. Actions
// appear when the server says they are configured; the token typed in is kept in this tab's
// sessionStorage and sent as `Authorization: Bearer` (see auth.ts).

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Backstop</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1rem; color: #111; background: #fff; }
  h1 { font-size: 1.4rem; margin: 0 0 .25rem; }
  h2 { font-size: 1.1rem; margin: 1.5rem 0 .5rem; }
  table { border-collapse: collapse; width: 100%; }
  th, td { text-align: left; padding: .25rem .5rem; border-bottom: 1px solid #ccc; vertical-align: top; }
  th { background: #f2f2f2; }
  .up { color: #0a6b0a; font-weight: bold; }
  .down { color: #b00020; font-weight: bold; }
  .muted { color: #555; }
  .err { color: #b00020; }
  button { font: inherit; margin: 0 .25rem .25rem 0; }
  #summary span { margin-right: 1.5rem; }
  :focus-visible { outline: 3px solid #1a5fb4; outline-offset: 2px; }
</style>
</head>
<body>
<header>
  <h1>Backstop</h1>
  <p id="summary" class="muted">Loading…</p>
</header>
<main>
  <p id="notice" role="status" aria-live="polite"></p>
  <section aria-labelledby="h-queues">
    <h2 id="h-queues">Queues</h2>
    <table><thead><tr><th scope="col">Queue</th><th scope="col">Messages</th><th scope="col">Oldest</th></tr></thead><tbody id="queues"></tbody></table>
    <p id="disk" class="muted"></p>
  </section>
  <section aria-labelledby="h-dest">
    <h2 id="h-dest">Destinations</h2>
    <table><thead><tr><th scope="col">Destination</th><th scope="col">State</th><th scope="col">Queued</th><th scope="col">Oldest</th><th scope="col">Next retry</th><th scope="col">Last delivery</th><th scope="col"><span class="actions-only">Actions</span></th></tr></thead><tbody id="destinations"></tbody></table>
  </section>
  <section aria-labelledby="h-msgs">
    <h2 id="h-msgs">Queued messages</h2>
    <table><thead><tr><th scope="col">Queue ID</th><th scope="col">Queue</th><th scope="col">Age</th><th scope="col">Recipients</th><th scope="col">Last error</th><th scope="col"><span class="actions-only">Actions</span></th></tr></thead><tbody id="messages"></tbody></table>
  </section>
  <section aria-labelledby="h-smtpd">
    <h2 id="h-smtpd">Verify cache and rejects (last hour)</h2>
    <p id="verify"></p>
    <p id="rejects"></p>
  </section>
  <section aria-labelledby="h-token" id="token-section" hidden>
    <h2 id="h-token">Actions</h2>
    <form id="token-form">
      <label for="token">Action token</label>
      <input id="token" type="password" autocomplete="current-password">
      <button type="submit">Use token</button>
    </form>
  </section>
  <p id="readonly" class="muted" hidden>Read-only: no action token is configured (backstop_http_action_token_file).</p>
</main>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let status = null;
function dur(s) {
  s = Math.max(0, Math.floor(s));
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
  return d ? d + "d " + h + "h" : h ? h + "h " + m + "m" : m ? m + "m " + (s % 60) + "s" : s + "s";
}
function ago(ms, now) { return ms === undefined || ms === null ? "never" : ms <= now ? dur((now - ms) / 1000) + " ago" : "in " + dur((ms - now) / 1000); }
function cell(tr, text, cls) { const td = document.createElement("td"); td.textContent = text; if (cls) td.className = cls; tr.appendChild(td); return td; }
function button(td, label, name, body) {
  const b = document.createElement("button");
  b.type = "button"; b.textContent = label; b.setAttribute("aria-label", label + " " + name);
  b.addEventListener("click", () => act(body, label + " " + name));
  td.appendChild(b);
}
function fill(id, rows) { const tb = $(id); tb.replaceChildren(...rows); }
function render(st) {
  const now = st.generated;
  const smtpd = st.workers.filter((w) => w.role === "smtpd").length;
  $("summary").replaceChildren(...[
    "Backstop " + st.version, "master pid " + st.master.pid, "up " + dur(st.master.uptime),
    st.workers.length ? smtpd + " smtpd workers, 1 queue manager" : "single process",
    st.missing ? st.missing + " workers did not answer" : "",
  ].filter(Boolean).map((t) => { const s = document.createElement("span"); s.textContent = t; return s; }));
  const q = st.queue;
  const canAct = st.actions;
  document.querySelectorAll(".actions-only").forEach((e) => { e.hidden = !canAct; });
  $("token-section").hidden = !canAct;
  $("readonly").hidden = canAct;
  if (!q) { fill("queues", []); $("disk").textContent = "The queue manager did not answer."; return; }
  fill("queues", Object.entries(q.queues).map(([name, v]) => { const tr = document.createElement("tr"); cell(tr, name); cell(tr, String(v.messages)); cell(tr, v.messages ? dur(v.oldestAge) : "-"); return tr; }));
  $("disk").textContent = q.disk.error ? "Queue file system: " + q.disk.error : "Queue file system " + q.disk.path + ": " + (q.disk.freeBytes / 1073741824).toFixed(1) + " GiB free of " + (q.disk.totalBytes / 1073741824).toFixed(1) + " GiB. maximal_queue_lifetime " + dur(q.maximalQueueLifetime) + ".";
  fill("destinations", q.destinations.map((d) => {
    const tr = document.createElement("tr");
    cell(tr, d.destination);
    cell(tr, d.up === undefined ? "not tried" : (d.up ? "reachable" : "unreachable") + " since " + ago(d.since, now), d.up === undefined ? "muted" : d.up ? "up" : "down");
    cell(tr, String(d.queued));
    cell(tr, d.queued ? dur(d.oldestAge) + " of " + dur(q.maximalQueueLifetime) : "-");
    cell(tr, d.nextRetry === undefined ? "-" : d.nextRetry === "flush on return" ? "flush on return" : d.nextRetry <= now ? "now" : ago(d.nextRetry, now));
    cell(tr, ago(d.lastDelivery, now));
    const td = cell(tr, "");
    if (canAct && d.queued) button(td, "Flush", d.destination, { action: "flush", destination: d.destination });
    return tr;
  }));
  const msgs = [];
  const seen = new Set();
  for (const d of q.destinations) for (const m of d.messages) if (!seen.has(m.id)) { seen.add(m.id); msgs.push(m); }
  fill("messages", msgs.map((m) => {
    const tr = document.createElement("tr");
    cell(tr, m.id); cell(tr, m.queue); cell(tr, dur(m.age)); cell(tr, m.recipients.join(", ")); cell(tr, m.lastError || "-", m.lastError ? "err" : "muted");
    const td = cell(tr, "");
    if (canAct) {
      if (m.queue === "hold") button(td, "Release", m.id, { action: "release", id: m.id });
      else button(td, "Hold", m.id, { action: "hold", id: m.id });
      button(td, "Requeue", m.id, { action: "requeue", id: m.id });
      button(td, "Delete", m.id, { action: "delete", id: m.id });
    }
    return tr;
  }));
  if (!msgs.length) { const tr = document.createElement("tr"); cell(tr, "No queued mail.", "muted").colSpan = 6; fill("messages", [tr]); }
  const v = st.verify;
  $("verify").textContent = "Verify cache: " + (v.cacheSize === undefined ? "size unknown" : v.cacheSize + " entries") + "; " + (v.hitRateLastHour === undefined ? "no lookups in the last hour" : "hit rate " + (100 * v.hitRateLastHour).toFixed(1) + "% (" + v.hitsLastHour + " hits, " + v.missesLastHour + " misses)") + ".";
  const r = Object.entries(st.rejectsLastHour).sort((a, b) => b[1] - a[1]);
  $("rejects").textContent = "Rejects: " + (r.length ? r.map(([k, n]) => k + " " + n).join(", ") : "none") + ".";
}
async function refresh() {
  try {
    const res = await fetch("/api/status", { cache: "no-store" });
    if (!res.ok) throw new Error("HTTP " + res.status);
    status = await res.json();
    render(status);
    document.body.dataset.updated = String(status.generated);
  } catch (e) {
    $("notice").textContent = "Cannot read the status: " + e.message;
  }
}
async function act(body, what) {
  const token = sessionStorage.getItem("backstop-token") || "";
  $("notice").textContent = what + "…";
  try {
    const res = await fetch("/api/action", { method: "POST", headers: { "content-type": "application/json", authorization: "Bearer " + token }, body: JSON.stringify(body) });
    const r = await res.json();
    $("notice").textContent = res.ok ? what + ": done." : what + ": refused: " + r.error;
  } catch (e) {
    $("notice").textContent = what + ": failed: " + e.message;
  }
  await refresh();
}
$("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  sessionStorage.setItem("backstop-token", $("token").value);
  $("token").value = "";
  $("notice").textContent = "Token stored for this tab.";
});
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
`;
