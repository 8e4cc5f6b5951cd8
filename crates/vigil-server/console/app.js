// Vigil's console: the incident queue over the server's API (same origin, the session
// cookie and the CSRF token). No inline script and no external resource: the server's
// Content-Security-Policy is default-src 'self'.
"use strict";

const STATUSES = ["new", "in_progress", "resolved", "false_positive"];
const SEVERITY = ["Unknown", "Informational", "Low", "Medium", "High", "Critical", "Fatal"];
const $ = (id) => document.getElementById(id);
let session = JSON.parse(sessionStorage.getItem("vigil") || "null");
let findings = [];
let selected = 0;

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf;
  const r = await fetch(path, { method, headers, credentials: "same-origin",
                                body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  return { status: r.status, data };
}

function show(which) {
  $("login").hidden = which !== "login";
  $("queue").hidden = which !== "queue";
  $("logout").hidden = which !== "queue";
}

async function start() {
  // Without a session of this tab there is nothing to ask the server.
  const me = session ? await api("GET", "/api/v1/me") : { status: 401 };
  if (me.status === 200) {
    $("who").textContent = `${me.data.name} · organisation ${me.data.org} · ${me.data.role}`;
    show("queue");
    await refresh();
  } else {
    session = null;
    sessionStorage.removeItem("vigil");
    show("login");
  }
}

async function login(ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  const r = await api("POST", "/api/v1/login", {
    user: $("user").value, password: $("password").value, totp: $("totp").value });
  if (r.status !== 200) {
    $("login-error").textContent = r.status === 429 ? "Too many attempts: wait and try again."
      : "Sign-in refused: check the user, the password and the code.";
    return;
  }
  session = { org: r.data.org, csrf: r.data.csrf_token };
  sessionStorage.setItem("vigil", JSON.stringify(session));
  $("password").value = "";
  $("totp").value = "";
  await start();
}

function cell(text, cls) {
  const td = document.createElement("td");
  if (cls) {
    const span = document.createElement("span");
    span.className = cls;
    span.textContent = text;
    td.appendChild(span);
  } else {
    td.textContent = text;
  }
  return td;
}

function render() {
  const q = $("filter").value.toLowerCase();
  const rows = $("rows");
  rows.replaceChildren();
  const shown = findings.filter((f) =>
    !q || [f.title, f.hostname, f.status, f.story || ""].some((s) => s.toLowerCase().includes(q)));
  selected = Math.min(selected, Math.max(shown.length - 1, 0));
  shown.forEach((f, i) => {
    const tr = document.createElement("tr");
    tr.dataset.uid = f.uid;
    if (i === selected) tr.className = "selected";
    tr.appendChild(cell(new Date(f.time).toISOString().replace("T", " ").slice(0, 19)));
    tr.appendChild(cell(SEVERITY[f.severity_id] || String(f.severity_id), `sev sev-${f.severity_id}`));
    tr.appendChild(cell(f.class_uid === 2005 ? "incident" : "finding"));
    tr.appendChild(cell(f.hostname));
    tr.appendChild(cell(f.title));
    tr.appendChild(cell(f.story || ""));
    const td = document.createElement("td");
    const sel = document.createElement("select");
    sel.className = "status";
    sel.setAttribute("aria-label", "Status");
    for (const s of STATUSES) {
      const o = document.createElement("option");
      o.value = s;
      o.textContent = s.replace("_", " ");
      sel.appendChild(o);
    }
    sel.value = f.status;
    sel.addEventListener("change", () => setStatus(f, sel.value));
    td.appendChild(sel);
    tr.appendChild(td);
    tr.addEventListener("click", () => { selected = i; render(); });
    rows.appendChild(tr);
  });
  $("count").textContent = `${shown.length} of ${findings.length}`;
  return shown;
}

async function refresh() {
  if (!session) return;
  const r = await api("GET", `/api/v1/orgs/${session.org}/findings`);
  if (r.status === 401) { await start(); return; }
  $("queue-error").textContent = r.status === 200 ? "" : `The server answered ${r.status}.`;
  if (r.status === 200) {
    findings = r.data.findings;
    render();
  }
}

async function setStatus(f, status) {
  const r = await api("POST",
    `/api/v1/orgs/${session.org}/findings/${encodeURIComponent(f.uid)}/status`, { status });
  $("queue-error").textContent = r.status === 200 ? "" : `Status not changed: the server answered ${r.status}.`;
  await refresh();
}

document.addEventListener("keydown", (ev) => {
  if ($("queue").hidden || ev.target.tagName === "INPUT" || ev.target.tagName === "SELECT") {
    if (ev.key === "Escape") ev.target.blur();
    return;
  }
  const shown = render();
  if (ev.key === "j") selected = Math.min(selected + 1, shown.length - 1);
  else if (ev.key === "k") selected = Math.max(selected - 1, 0);
  else if (ev.key === "r") { refresh(); return; }
  else if (ev.key === "/") { ev.preventDefault(); $("filter").focus(); return; }
  else if ("1234".includes(ev.key) && shown[selected]) {
    setStatus(shown[selected], STATUSES[Number(ev.key) - 1]);
    return;
  } else return;
  render();
});

$("login").addEventListener("submit", login);
$("filter").addEventListener("input", render);
$("logout").addEventListener("click", async () => {
  await api("POST", "/api/v1/logout");
  session = null;
  sessionStorage.removeItem("vigil");
  show("login");
});
setInterval(() => { if (!$("queue").hidden) refresh(); }, 5000);
start();
