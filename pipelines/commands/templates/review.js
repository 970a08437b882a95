// The review page: one record at a time; every label is sent as it is given, and what the
// server already holds is shown on load (a reload or a second tab loses nothing).
"use strict";
let items = [], labels = {}, at = 0;

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function fill(id, children) {
  const box = document.getElementById(id);
  box.replaceChildren(...children);
}

function marks(id) {
  const l = labels[id];
  return { sentence: new Set((l && l.unsupported && l.unsupported.sentence) || []),
           statement: new Set((l && l.unsupported && l.unsupported.statement) || []) };
}

function show() {
  const item = items[at];
  if (!item) return;
  const m = marks(item.id), label = labels[item.id] && labels[item.id].label;
  document.getElementById("image").src = "image/" + encodeURIComponent(item.id);
  document.getElementById("where").textContent = `${at + 1} of ${items.length} - ${item.stratum}` +
    (item.detail ? ` - ${item.detail}` : "") + ` - ${item.id}`;
  fill("questions", item.questions.map((q, i) => el("li", `${q}  ->  ${item.golds[i] ?? ""}`)));
  fill("statements", item.statements.map((s, i) => {
    const li = el("li", s, "mark" + (m.statement.has(i) ? " unsupported" : ""));
    li.addEventListener("click", () => toggle("statement", i));
    return li;
  }));
  fill("sentences", item.sentences.map((s, i) => {
    const li = el("li", s, "mark" + (m.sentence.has(i) ? " unsupported" : ""));
    li.addEventListener("click", () => toggle("sentence", i));
    return li;
  }));
  fill("traces", item.traces.length ? item.traces.map(t => el("div", `${t.question}\n${t.reasoning}`, "trace"))
                                     : [el("p", item.status === "kept" ? "(no trace published)" : "(rejected records publish no traces)")]);
  const rows = item.verdicts.map(v => {
    const tr = el("tr");
    tr.append(el("td", v.filter), el("td", v.score === null ? "-" : v.score.toFixed(3)),
              el("td", v.score === null ? "did not run" : v.kept ? "kept" : "rejected", v.kept || v.score === null ? "" : "rejected"),
              el("td", v.detail || ""));
    return tr;
  });
  document.querySelector("#verdicts tbody").replaceChildren(...rows);
  document.getElementById("good").classList.toggle("chosen", label === "good");
  document.getElementById("bad").classList.toggle("chosen", label === "bad");
  document.getElementById("state").textContent = label ? `labelled ${label}` : "not labelled yet";
  const done = items.filter(i => labels[i.id]).length;
  document.getElementById("progress").textContent = `${done} of ${items.length} labelled`;
  document.body.dataset.record = item.id;
}

async function send(id, label, m) {
  const body = { record: id, label: label,
                 unsupported: { sentence: [...m.sentence].sort((a, b) => a - b), statement: [...m.statement].sort((a, b) => a - b) } };
  const r = await fetch("api/label", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (!r.ok) { document.getElementById("state").textContent = "not saved: " + (await r.text()); return; }
  labels[id] = await r.json();
  show();
}

function setLabel(label) {
  const item = items[at];
  return send(item.id, label, marks(item.id));
}

function toggle(unit, i) {
  const item = items[at], m = marks(item.id), label = labels[item.id] && labels[item.id].label;
  if (m[unit].has(i)) m[unit].delete(i); else m[unit].add(i);
  labels[item.id] = { ...(labels[item.id] || {}), label: label, unsupported: { sentence: [...m.sentence], statement: [...m.statement] } };
  // an unsupported statement or sentence makes the record bad unless the reviewer says otherwise
  const next = label || ((m.sentence.size || m.statement.size) ? "bad" : null);
  if (next) send(item.id, next, m); else show();
}

function go(step) { at = Math.max(0, Math.min(items.length - 1, at + step)); show(); }

function nextUnlabelled() {
  for (let k = 1; k <= items.length; k++) {
    const j = (at + k) % items.length;
    if (!labels[items[j].id]) { at = j; break; }
  }
  show();
}

document.addEventListener("keydown", e => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "g") setLabel("good");
  else if (e.key === "b") setLabel("bad");
  else if (e.key === "j" || e.key === "ArrowRight") go(1);
  else if (e.key === "k" || e.key === "ArrowLeft") go(-1);
  else if (e.key === "n") nextUnlabelled();
  else if (/^[1-9]$/.test(e.key) && Number(e.key) <= items[at].sentences.length) toggle("sentence", Number(e.key) - 1);
});

window.addEventListener("DOMContentLoaded", async () => {
  document.getElementById("good").addEventListener("click", () => setLabel("good"));
  document.getElementById("bad").addEventListener("click", () => setLabel("bad"));
  document.getElementById("next").addEventListener("click", () => go(1));
  document.getElementById("prev").addEventListener("click", () => go(-1));
  const [got, held] = await Promise.all([fetch("api/items").then(r => r.json()), fetch("api/labels").then(r => r.json())]);
  items = got.items; labels = held;
  const first = items.findIndex(i => !labels[i.id]);
  at = first < 0 ? 0 : first;
  show();
  document.body.dataset.ready = "1";
});
