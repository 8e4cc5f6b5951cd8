// Vigil's console over the server's API (same origin, the session cookie and the CSRF
// token): the incident queue, an incident's process tree, hosts with their health,
// remote response (each action confirmed here and audited by the server) and the audit
// log. No inline script and no external resource: the server's Content-Security-Policy
// is default-src 'self'. Text from the server is only ever set as textContent.
"use strict";

const STATUSES = ["new", "in_progress", "resolved", "false_positive"];
const SEVERITY = ["Unknown", "Informational", "Low", "Medium", "High", "Critical", "Fatal"];
const PAGES = ["login", "queue", "story", "search", "hosts", "audit"];
const $ = (id) => document.getElementById(id);
let session = JSON.parse(sessionStorage.getItem("vigil") || "null");
let findings = [];
let selected = 0;
let hosts = [];
let current = null; // the story page's incident
let hostShown = null; // the host whose actions the hosts page lists
let pendingKey = ""; // the first key of a two-key shortcut (g i, g h, g a)
let myName = ""; // the signed-in user
const picked = new Set(); // the queue's selected findings (uids)

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf;
  const r = await fetch(path, { method, headers, credentials: "same-origin",
                                body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch (_) { data = null; }
  if (r.status === 401 && path !== "/api/v1/login" && path !== "/api/v1/me") {
    session = null;
    sessionStorage.removeItem("vigil");
    show("login");
  }
  return { status: r.status, data };
}

const org = (path) => `/api/v1/orgs/${session.org}${path}`;
const utc = (ms) => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "");
const ago = (secs) => {
  if (!secs) return "never";
  const d = Math.max(0, Math.round(Date.now() / 1000 - secs));
  return d < 90 ? `${d} s ago` : d < 5400 ? `${Math.round(d / 60)} min ago` : `${Math.round(d / 3600)} h ago`;
};

function show(which) {
  for (const p of PAGES) $(p).hidden = p !== which;
  $("logout").hidden = which === "login";
  $("nav").hidden = which === "login";
  for (const p of ["queue", "search", "hosts", "audit"]) {
    $(`nav-${p}`).className = p === which || (p === "queue" && which === "story") ? "here" : "";
  }
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function cell(text, cls) {
  const td = el("td");
  if (cls) td.appendChild(el("span", text, cls));
  else td.textContent = text === undefined || text === null ? "" : String(text);
  return td;
}

function button(text, cls, onClick) {
  const b = el("button", text, cls);
  b.addEventListener("click", (ev) => { ev.stopPropagation(); onClick(); });
  return b;
}

// ---- confirmation -------------------------------------------------------------

let confirmAction = null;

function confirmThen(text, action) {
  $("confirm-text").textContent = text;
  confirmAction = action;
  $("confirm").hidden = false;
  $("confirm-yes").focus();
}

function closeConfirm() {
  $("confirm").hidden = true;
  confirmAction = null;
}

$("confirm-yes").addEventListener("click", async () => {
  const action = confirmAction;
  closeConfirm();
  if (action) await action();
});
$("confirm-no").addEventListener("click", closeConfirm);

// ---- routing ------------------------------------------------------------------

async function route() {
  if (!session) { show("login"); return; }
  const hash = location.hash || "#/queue";
  if (hash.startsWith("#/story/")) {
    show("story");
    await loadStory(decodeURIComponent(hash.slice("#/story/".length)));
  } else if (hash === "#/search") {
    show("search");
    $("query").focus();
  } else if (hash === "#/hosts") {
    show("hosts");
    await loadHosts();
  } else if (hash === "#/audit") {
    show("audit");
    await loadAudit();
  } else {
    show("queue");
    await refresh();
  }
}

async function start() {
  // Without a session of this tab there is nothing to ask the server.
  const me = session ? await api("GET", "/api/v1/me") : { status: 401 };
  if (me.status === 200) {
    myName = me.data.name;
    $("who").textContent = `${me.data.name} · organisation ${me.data.org} · ${me.data.role}`;
    await route();
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

// ---- the incident queue -------------------------------------------------------

function shownFindings() {
  const q = $("filter").value.toLowerCase();
  return findings.filter((f) =>
    !q || [f.title, f.hostname, f.status, f.story || ""].some((s) => s.toLowerCase().includes(q)));
}

function render() {
  const rows = $("rows");
  rows.replaceChildren();
  const shown = shownFindings();
  selected = Math.min(selected, Math.max(shown.length - 1, 0));
  shown.forEach((f, i) => {
    const tr = el("tr", null, i === selected ? "selected" : "");
    tr.dataset.uid = f.uid;
    const pick = el("td");
    const box = el("input", null, "pick");
    box.type = "checkbox";
    box.checked = picked.has(f.uid);
    box.setAttribute("aria-label", "Select");
    box.addEventListener("click", (ev) => ev.stopPropagation());
    box.addEventListener("change", () => { togglePick(f.uid, box.checked); });
    pick.appendChild(box);
    tr.appendChild(pick);
    tr.appendChild(cell(utc(f.time)));
    tr.appendChild(cell(SEVERITY[f.severity_id] || String(f.severity_id), `sev sev-${f.severity_id}`));
    tr.appendChild(cell(f.class_uid === 2005 ? "incident" : "finding"));
    tr.appendChild(cell(f.hostname));
    const title = el("td");
    if (f.story) {
      const a = el("a", f.title, "open");
      a.href = `#/story/${encodeURIComponent(f.story)}`;
      title.appendChild(a);
    } else {
      title.textContent = f.title;
    }
    tr.appendChild(title);
    tr.appendChild(cell((f.techniques || []).join(", ")));
    tr.appendChild(cell(f.assignee || ""));
    tr.appendChild(cell(f.notes ? String(f.notes) : ""));
    const td = el("td");
    const sel = el("select", null, "status");
    sel.setAttribute("aria-label", "Status");
    for (const s of STATUSES) {
      const o = el("option", s.replace("_", " "));
      o.value = s;
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
  // Selected findings no longer listed are forgotten.
  for (const uid of [...picked]) if (!findings.some((f) => f.uid === uid)) picked.delete(uid);
  $("bulk").hidden = picked.size === 0;
  $("bulk-count").textContent = `${picked.size} selected`;
  $("select-all").checked = shown.length > 0 && shown.every((f) => picked.has(f.uid));
  return shown;
}

function togglePick(uid, on) {
  if (on) picked.add(uid); else picked.delete(uid);
  render();
}

async function bulkStatus(status) {
  const uids = [...picked];
  const r = await api("POST", org("/findings/status"), { uids, status });
  $("queue-error").textContent = r.status === 200 ? "" : `Status not changed: the server answered ${r.status}.`;
  await refresh();
}

async function assignTo(uids, assignee) {
  for (const uid of uids) {
    const r = await api("POST", org(`/findings/${encodeURIComponent(uid)}/assign`), { assignee });
    if (r.status !== 200) {
      $("queue-error").textContent = `Not assigned: the server answered ${r.status}.`;
      break;
    }
  }
  await refresh();
}

$("bulk-apply").addEventListener("click", () => bulkStatus($("bulk-status").value));
$("bulk-mine").addEventListener("click", () => assignTo([...picked], myName));
$("bulk-unassign").addEventListener("click", () => assignTo([...picked], null));
$("bulk-clear").addEventListener("click", () => { picked.clear(); render(); });
$("select-all").addEventListener("change", () => {
  for (const f of shownFindings()) {
    if ($("select-all").checked) picked.add(f.uid); else picked.delete(f.uid);
  }
  render();
});

async function refresh() {
  if (!session) return;
  const r = await api("GET", org("/findings"));
  $("queue-error").textContent = r.status === 200 ? "" : `The server answered ${r.status}.`;
  if (r.status === 200) {
    findings = r.data.findings;
    render();
  }
}

async function setStatus(f, status) {
  const r = await api("POST", org(`/findings/${encodeURIComponent(f.uid)}/status`), { status });
  $("queue-error").textContent = r.status === 200 ? "" : `Status not changed: the server answered ${r.status}.`;
  await refresh();
}

// ---- remote response ----------------------------------------------------------

const ACTION_TEXT = {
  isolate: (h) => `Isolate ${h}? Only loopback and the Vigil server stay reachable until the isolation is lifted.`,
  lift: (h) => `Lift the isolation of ${h}? Its network opens again.`,
  kill: (h, t) => `Kill ${t} on ${h}, with every process of its branch?`,
  quarantine: (h, t) => `Move ${t} on ${h} into the quarantine vault?`,
};

function respond(agent, hostname, kind, target, finding, after) {
  confirmThen(ACTION_TEXT[kind](hostname, target), async () => {
    const body = { kind };
    if (target) body.target = target;
    if (finding) body.finding = finding;
    const r = await api("POST", org(`/agents/${encodeURIComponent(agent)}/actions`), body);
    const msg = r.status === 200 ? "" : `The action was not queued: the server answered ${r.status}.`;
    for (const id of ["story-error", "hosts-error"]) $(id).textContent = msg;
    await after();
  });
}

function actionRows(tbody, actions) {
  tbody.replaceChildren();
  for (const a of actions) {
    const tr = el("tr");
    tr.dataset.id = a.id;
    tr.appendChild(cell(a.id));
    tr.appendChild(cell(a.kind));
    tr.appendChild(cell(a.target, "mono"));
    tr.appendChild(cell(a.requested_by));
    tr.appendChild(cell(a.state, `state state-${a.state}`));
    tr.appendChild(cell(a.result));
    tbody.appendChild(tr);
  }
  return actions.some((a) => a.state === "queued" || a.state === "sent");
}

async function fetchActions(agent) {
  const r = await api("GET", org(`/agents/${encodeURIComponent(agent)}/actions`));
  return r.status === 200 ? r.data.actions : [];
}

// Loads overlap (a click's reload and the watch's): only the latest one draws.
let loadSeq = 0;

// While an action waits for its agent, its page looks again every second.
let watching = null;
function watch(reload) {
  if (watching) clearTimeout(watching);
  watching = setTimeout(async () => { watching = null; await reload(); }, 1000);
}

// ---- an incident --------------------------------------------------------------

function treeNode(n) {
  const li = el("li", null, n.flagged ? "flagged" : "");
  const line = el("div", null, "proc");
  line.appendChild(el("span", n.name || "?", "name"));
  if (n.pid !== null && n.pid !== undefined) line.appendChild(el("span", `pid ${n.pid}`, "pid"));
  if (n.cmd_line) line.appendChild(el("span", n.cmd_line, "cmd mono"));
  if (n.uid) {
    line.appendChild(button("Kill branch", "small kill", () =>
      respond(current.agent_id, current.hostname, "kill", n.uid, null, reloadStory)));
  }
  // A flagged process's executable, when the tree knows its path: into the vault.
  if (n.flagged && n.name && n.name.startsWith("/")) {
    line.appendChild(button("Quarantine file", "small quarantine", () =>
      respond(current.agent_id, current.hostname, "quarantine", n.name, null, reloadStory)));
  }
  li.appendChild(line);
  for (const f of n.findings || []) {
    const p = el("div", null, "finding");
    p.appendChild(el("span", f.severity, `sev sev-name-${f.severity}`));
    p.appendChild(el("span", ` ${f.title}`));
    if (f.count > 1) p.appendChild(el("span", ` ×${f.count}`, "count"));
    li.appendChild(p);
  }
  if (n.children && n.children.length) {
    const ul = el("ul");
    for (const c of n.children) ul.appendChild(treeNode(c));
    li.appendChild(ul);
  }
  return li;
}

async function loadStory(story) {
  const seq = ++loadSeq;
  // The host's actions before the incident: an action seen done is then matched by the
  // host's state read after it (the server records both at once).
  const known = current && current.story === story ? current.agent_id : null;
  const actions = known ? await fetchActions(known) : null;
  const r = await api("GET", org(`/stories/${encodeURIComponent(story)}`));
  if (seq !== loadSeq) return;
  if (r.status !== 200) {
    $("story-error").textContent = r.status === 404 ? "No such incident." : `The server answered ${r.status}.`;
    $("tree").replaceChildren();
    current = null;
    return;
  }
  $("story-error").textContent = "";
  current = r.data;
  const inc = current.incident || {};
  $("story-title").textContent = `Incident on ${current.hostname}`;
  $("story-host").textContent = `${current.hostname}${current.isolated ? " (isolated)" : ""}`;
  $("story-severity").textContent = inc.severity || "";
  $("story-span").textContent = `${utc(inc.first_time)} to ${utc(inc.last_time)}`;
  $("story-techniques").textContent = (inc.techniques || []).join(", ") || "none tagged";
  $("story-id").textContent = current.story;
  $("story-isolate").hidden = current.isolated;
  $("story-lift").hidden = !current.isolated;
  const tree = $("tree");
  tree.replaceChildren();
  for (const n of inc.tree || []) tree.appendChild(treeNode(n));
  const listed = actions || await fetchActions(current.agent_id);
  if (seq !== loadSeq) return;
  if (actionRows($("story-actions"), listed)) watch(reloadStory);
  await loadNotes(current.story);
}

async function loadNotes(story) {
  const r = await api("GET", org(`/stories/${encodeURIComponent(story)}/notes`));
  const ul = $("notes");
  ul.replaceChildren();
  if (r.status !== 200) return;
  for (const n of r.data.notes) {
    const li = el("li");
    li.appendChild(el("span", `${n.author} · ${utc(n.at)}`, "meta"));
    li.appendChild(el("div", n.text, "text"));
    ul.appendChild(li);
  }
}

$("note-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const text = $("note-text").value;
  if (!current || !text.trim()) return;
  const r = await api("POST", org(`/stories/${encodeURIComponent(current.story)}/notes`), { text });
  if (r.status === 200) {
    $("note-text").value = "";
    $("story-error").textContent = "";
    await loadNotes(current.story);
  } else {
    $("story-error").textContent = `The note was not kept: the server answered ${r.status}.`;
  }
});

async function reloadStory() {
  if (current && !$("story").hidden) await loadStory(current.story);
}

$("story-kill").addEventListener("click", () => current &&
  respond(current.agent_id, current.hostname, "kill", current.story, null, reloadStory));
$("story-isolate").addEventListener("click", () => current &&
  respond(current.agent_id, current.hostname, "isolate", "", null, reloadStory));
$("story-lift").addEventListener("click", () => current &&
  respond(current.agent_id, current.hostname, "lift", "", null, reloadStory));

// ---- hosts --------------------------------------------------------------------

async function loadHosts() {
  const seq = ++loadSeq;
  // The shown host's actions before the hosts, as for an incident.
  const actions = hostShown ? await fetchActions(hostShown) : [];
  const r = await api("GET", org("/agents"));
  if (seq !== loadSeq) return;
  if (r.status !== 200) { $("hosts-error").textContent = `The server answered ${r.status}.`; return; }
  $("hosts-error").textContent = "";
  hosts = r.data.agents;
  const rows = $("host-rows");
  rows.replaceChildren();
  for (const h of hosts) {
    const s = h.stats || {};
    const tr = el("tr", null, h.revoked ? "revoked" : "");
    tr.dataset.agent = h.id;
    tr.appendChild(cell(h.hostname));
    tr.appendChild(cell(h.group_id));
    tr.appendChild(cell(ago(h.last_seen)));
    tr.appendChild(cell(h.version));
    tr.appendChild(cell(s.content_version || ""));
    tr.appendChild(cell(s.sensor_received ?? ""));
    tr.appendChild(cell(s.sensor_lost ?? "", s.sensor_lost > 0 ? "lost" : ""));
    tr.appendChild(cell(h.revoked ? "revoked" : h.isolated ? "isolated" : "open",
                        h.isolated ? "net net-isolated" : "net"));
    const td = el("td");
    if (!h.revoked) {
      const kind = h.isolated ? "lift" : "isolate";
      td.appendChild(button(h.isolated ? "Lift isolation" : "Isolate", `act-${kind}`, () =>
        respond(h.id, h.hostname, kind, "", null, async () => { hostShown = h.id; await loadHosts(); })));
    }
    td.appendChild(button("Actions", "small", async () => { hostShown = h.id; await loadHosts(); }));
    tr.appendChild(td);
    rows.appendChild(tr);
  }
  $("hosts-count").textContent = `${hosts.length} hosts`;
  const showing = hosts.find((h) => h.id === hostShown);
  $("host-actions-title").hidden = !showing;
  $("host-actions-table").hidden = !showing;
  if (showing) {
    $("host-actions-title").textContent = `Response on ${showing.hostname}`;
    if (actionRows($("host-actions"), actions)) watch(loadHosts);
  }
}

// ---- event search --------------------------------------------------------------

function valueText(v) {
  if (v === null || v === undefined) return "";
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

async function runSearch(ev) {
  if (ev) ev.preventDefault();
  const query = $("query").value.trim();
  if (!query) return;
  $("search-error").textContent = "";
  $("search-status").textContent = "Running…";
  const started = performance.now();
  const r = await api("POST", org("/search"), { query, limit: 500 });
  const ms = Math.round(performance.now() - started);
  const head = $("result-head");
  const rows = $("result-rows");
  head.replaceChildren();
  rows.replaceChildren();
  if (r.status !== 200) {
    $("search-status").textContent = "";
    $("search-error").textContent = r.status === 400 && r.data && r.data.message
      ? r.data.message : `The server answered ${r.status}.`;
    return;
  }
  for (const c of r.data.columns) head.appendChild(el("th", c));
  for (const row of r.data.rows) {
    const tr = el("tr");
    for (const v of row) tr.appendChild(cell(valueText(v)));
    rows.appendChild(tr);
  }
  const n = r.data.rows.length;
  $("search-status").textContent = `${n} row${n === 1 ? "" : "s"} in ${ms} ms` +
    (r.data.truncated ? " (more rows match: narrow the query or add take N)" : "");
}

$("search-form").addEventListener("submit", runSearch);
$("query").addEventListener("keydown", (ev) => {
  if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) runSearch(ev);
});

// ---- the audit log ------------------------------------------------------------

async function loadAudit() {
  const r = await api("GET", org("/audit?limit=200"));
  if (r.status !== 200) {
    $("audit-error").textContent = r.status === 403 ? "Only administrators read the audit log."
      : `The server answered ${r.status}.`;
    return;
  }
  $("audit-error").textContent = "";
  const rows = $("audit-rows");
  rows.replaceChildren();
  for (const e of r.data.entries) {
    const tr = el("tr", null, e.result === "ok" || e.result === "queued" ? "" : "refused");
    tr.appendChild(cell(utc(e.at * 1000)));
    tr.appendChild(cell(e.actor));
    tr.appendChild(cell(e.action));
    tr.appendChild(cell(e.target, "mono"));
    tr.appendChild(cell(e.source));
    tr.appendChild(cell(e.result));
    rows.appendChild(tr);
  }
}

// ---- keys ---------------------------------------------------------------------

document.addEventListener("keydown", (ev) => {
  if (!$("confirm").hidden) {
    if (ev.key === "Escape") closeConfirm();
    return;
  }
  if (["INPUT", "SELECT", "TEXTAREA"].includes(ev.target.tagName)) {
    if (ev.key === "Escape") ev.target.blur();
    return;
  }
  if (!session) return;
  if (pendingKey === "g") {
    pendingKey = "";
    const to = { i: "#/queue", s: "#/search", h: "#/hosts", a: "#/audit" }[ev.key];
    if (to) location.hash = to;
    return;
  }
  if (ev.key === "g") { pendingKey = "g"; return; }
  if (ev.key === "r") { route(); return; }
  if (!$("story").hidden && ev.key === "Escape") { location.hash = "#/queue"; return; }
  if ($("queue").hidden) return;
  const shown = shownFindings();
  if (ev.key === "j") selected = Math.min(selected + 1, shown.length - 1);
  else if (ev.key === "k") selected = Math.max(selected - 1, 0);
  else if (ev.key === "/") { ev.preventDefault(); $("filter").focus(); return; }
  else if (ev.key === "Enter" && shown[selected] && shown[selected].story) {
    location.hash = `#/story/${encodeURIComponent(shown[selected].story)}`;
    return;
  } else if (ev.key === "x" && shown[selected]) {
    togglePick(shown[selected].uid, !picked.has(shown[selected].uid));
    return;
  } else if (ev.key === "a" && shown[selected]) {
    assignTo(picked.size ? [...picked] : [shown[selected].uid], myName);
    return;
  } else if ("1234".includes(ev.key) && shown[selected]) {
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
window.addEventListener("hashchange", route);
setInterval(() => { if (!$("queue").hidden) refresh(); }, 5000);
start();
