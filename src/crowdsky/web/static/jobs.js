/* Jobs page: polls /web/api/jobs every few seconds and redraws; nothing needs a reload. */
"use strict";
(function () {
  const { api, el, when, seconds } = window.CS;
  const root = document.getElementById("jobs-root");
  const updated = document.getElementById("jobs-updated");
  const dialog = document.getElementById("confirm-dialog");
  const POLL_MS = 2000;
  const open = new Set();       // upload sessions the user expanded
  const closed = new Set();     // ... and those they folded
  const frames = new Map();     // job id -> frames list (fetched on demand)
  let pendingDelete = null;
  let timer = null;
  let last = "";   // redraw only on change, so focus and scroll stay put

  function badge(status) { return el("span", { class: "badge " + status }, status); }

  function jobRow(job) {
    const stack = job.stack;
    const progress = job.status === "processing"
      ? el("span", {}, el("progress", { max: 1, value: job.progress || 0, "aria-label": "Progress of job " + job.id }),
          " ", Math.round((job.progress || 0) * 100) + "%", job.progress_message ? " — " + job.progress_message : "")
      : null;
    const history = job.errors.length
      ? el("ol", { class: "errors", "aria-label": "Error history" }, ...job.errors.map((e) => el("li", {}, e)))
      : null;
    let framesCell = job.frames + " frames";
    if (stack) framesCell = stack.aligned + " used, " + (stack.input - stack.aligned) + " rejected of " + stack.input;
    const details = stack
      ? el("button", { type: "button", class: "secondary small", "aria-expanded": frames.has(job.id) ? "true" : "false", onclick: () => toggleFrames(job.id) }, "Frames")
      : null;
    const list = frames.get(job.id);
    const framesList = list ? el("ul", { class: "frames-list" }, ...list.map((f) =>
      el("li", { class: f.used ? "result-ok" : "result-bad" }, f.file + ": " + (f.used ? "used" : "rejected — " + (f.reason || "no reason given"))))) : null;
    const status = el("td", {}, badge(job.status), job.status === "retry" ? " attempt " + job.attempts + " failed, will retry" : "", progress ? el("div", {}, progress) : null,
      job.status === "failed" && job.error ? el("div", { class: "result-bad" }, job.error) : null, history);
    const duration = job.started && job.completed ? seconds((Date.parse(job.completed) - Date.parse(job.started)) / 1000) : "";
    return el("tr", { dataset: { job: job.id, status: job.status } },
      el("td", {}, String(job.id)),
      el("td", {}, job.object || "—", el("div", { class: "help mono" }, job.chunk_key)),
      status,
      el("td", {}, framesCell, stack && stack.stars !== null ? el("div", { class: "help" }, stack.stars + " stars, " + seconds(stack.exptime)) : null, details, framesList),
      el("td", {}, when(job.created), duration ? el("div", { class: "help" }, "took " + duration) : null),
      el("td", {}, el("button", { type: "button", class: "danger small", disabled: job.status === "processing" ? true : null,
        "aria-label": "Delete job " + job.id, onclick: () => ask("Delete job " + job.id + " (" + (job.object || job.chunk_key) + ") with its frames and stack?", "/web/api/jobs/" + job.id + "/delete") }, "Delete")));
  }

  async function toggleFrames(jobId) {
    if (frames.has(jobId)) { frames.delete(jobId); last = ""; refresh(); return; }
    try { frames.set(jobId, (await api("/web/api/jobs/" + jobId + "/frames")).frames); }
    catch (e) { frames.set(jobId, [{ file: "frame list unavailable", used: false, reason: e.message }]); }
    refresh();
  }

  function render(data) {
    const bySession = new Map();
    for (const job of data.jobs) {
      if (!bySession.has(job.session)) bySession.set(job.session, []);
      bySession.get(job.session).push(job);
    }
    const parts = [];
    if (!data.sessions.length) parts.push(el("p", { class: "card" }, "No uploads yet. ", el("a", { href: "/upload" }, "Upload a night"), "."));
    for (const [index, s] of data.sessions.entries()) {
      const jobs = bySession.get(s.id) || [];
      const counts = {};
      for (const j of jobs) counts[j.status] = (counts[j.status] || 0) + 1;
      const summary = el("summary", {},
        el("strong", {}, s.object || "Upload " + s.id), badge(s.status),
        el("span", {}, s.files + " files, " + window.CS.bytes(s.size)), el("span", {}, when(s.created)),
        el("span", {}, Object.entries(counts).map(([k, v]) => v + " " + k).join(", ") || "no jobs"));
      const table = el("table", {}, el("caption", { class: "sr-only" }, "Jobs of upload " + s.id),
        el("thead", {}, el("tr", {}, ...["Job", "Object / chunk", "Status", "Frames", "Created", ""].map((h) => el("th", { scope: "col" }, h)))),
        el("tbody", {}, ...jobs.map(jobRow)));
      const details = el("details", { class: "card session", open: !closed.has(s.id) && (open.has(s.id) || index < 5 || jobs.some((j) => j.status !== "completed")) ? true : null, dataset: { session: s.id } },
        summary, el("div", { class: "scroll", tabindex: 0, role: "region", "aria-label": "Jobs table" }, jobs.length ? table : el("p", {}, s.status === "uploading" ? "Still uploading: finalize it on the upload page." : "No jobs.")),
        el("button", { type: "button", class: "danger small", "aria-label": "Delete upload " + s.id,
          onclick: () => ask("Delete this whole upload (" + s.files + " files, " + jobs.length + " jobs and their stacks)?", "/web/api/sessions/" + s.id + "/delete") }, "Delete upload"));
      details.addEventListener("toggle", () => {
        if (details.open) { open.add(s.id); closed.delete(s.id); } else { open.delete(s.id); closed.add(s.id); }
      });
      parts.push(details);
    }
    root.replaceChildren(...parts);
  }

  function ask(text, url) {
    pendingDelete = url;
    document.getElementById("confirm-text").textContent = text;
    dialog.showModal();
  }
  document.getElementById("confirm-no").addEventListener("click", () => dialog.close());
  document.getElementById("confirm-yes").addEventListener("click", async () => {
    dialog.close();
    try { await api(pendingDelete, { method: "POST" }); updated.textContent = "Deleted."; }
    catch (e) { updated.textContent = "Could not delete: " + e.message; }
    refresh();
  });

  async function refresh() {
    clearTimeout(timer);
    try {
      const data = await api("/web/api/jobs");
      const text = JSON.stringify(data) + JSON.stringify([...frames]);
      if (!dialog.open && text !== last) { last = text; render(data); }
      const active = data.jobs.filter((j) => j.status === "pending" || j.status === "processing" || j.status === "retry").length;
      updated.textContent = (active ? active + " jobs in progress; " : "") + "updated " + new Date().toLocaleTimeString();
    } catch (e) {
      updated.textContent = e.status === 401 ? "Your session ended: log in again." : "Connection lost (" + e.message + "); retrying…";
    }
    timer = setTimeout(refresh, document.hidden ? POLL_MS * 5 : POLL_MS);
  }
  refresh();
})();
