/* Upload page: check, hash, skip, send in parallel, resume; per-file and total progress. */
"use strict";
(function () {
  const { api, el, bytes } = window.CS;
  const API = "/api/raw_upload.php";
  const STORE_KEY = "crowdsky.upload.session";
  const PARALLEL = 3;
  const MAX_TRIES = 6;
  const FITS_EXT = /\.(fits?|fts)$/i;
  const page = document.getElementById("dropzone");
  const maxBytes = Number(document.body.dataset.maxUploadBytes || page.dataset.maxBytes || 0) || 100e6;
  const tbody = document.querySelector("#file-table tbody");
  const totalBar = document.getElementById("total-progress");
  const totalText = document.getElementById("total-text");
  const finalizeButton = document.getElementById("finalize");
  const resumeNote = document.getElementById("resume-note");
  const result = document.getElementById("finalize-result");
  const scrub = document.getElementById("scrub");

  let token = localStorage.getItem(STORE_KEY);
  let known = new Map();            // sha256 -> file name already in the session
  const items = [];                 // {file, name, size, row, state, sent, sha}
  const queue = [];
  let active = 0;
  let startPromise = null;

  api("/web/api/preferences").then((p) => { scrub.checked = !!p.scrub_location; }).catch(() => {});

  async function restore() {
    if (!token) return;
    try {
      const status = await api(API + "?action=status&session_token=" + encodeURIComponent(token));
      if (status.status !== "uploading") throw new Error("closed");
      known = new Map(status.files.map((f) => [f.sha256, f.filename]));
      resumeNote.hidden = false;
      resumeNote.textContent = "An unfinished upload with " + status.file_count + " files (" + bytes(status.total_size_bytes) +
        ") is open. Drop the same folder again to send the missing files (those already received are skipped), or finalize it.";
      finalizeButton.disabled = status.file_count === 0;
    } catch (e) {
      token = null;
      localStorage.removeItem(STORE_KEY);
    }
  }

  function session() {
    if (token) return Promise.resolve(token);
    if (!startPromise) {
      startPromise = api(API + "?action=start", { method: "POST" }).then((r) => {
        token = r.session_token;
        localStorage.setItem(STORE_KEY, token);
        return token;
      }).finally(() => { startPromise = null; });
    }
    return startPromise;
  }

  function addRow(item) {
    item.progress = el("progress", { max: 1, value: 0, "aria-label": "Progress of " + item.name });
    item.result = el("td", {}, "waiting");
    item.row = el("tr", { dataset: { name: item.name } }, el("td", { class: "mono" }, item.name), el("td", { class: "num" }, bytes(item.size)), el("td", {}, item.progress), item.result);
    tbody.append(item.row);
  }

  function setResult(item, state, text) {
    item.state = state;
    item.result.className = state === "done" ? "result-ok" : state === "skipped" ? "result-skip" : state === "error" ? "result-bad" : "";
    item.result.textContent = text;
    item.row.dataset.state = state;
    if (state !== "sending") item.progress.value = state === "error" ? 0 : 1;
    updateTotal();
  }

  function updateTotal() {
    const total = items.reduce((a, i) => a + i.size, 0);
    const done = items.reduce((a, i) => a + (i.state === "done" || i.state === "skipped" ? i.size : i.state === "error" ? 0 : i.sent || 0), 0);
    const count = (s) => items.filter((i) => i.state === s).length;
    totalBar.max = Math.max(total, 1);
    totalBar.value = done;
    const busy = items.length - count("done") - count("skipped") - count("error");
    totalText.textContent = items.length ? count("done") + " sent, " + count("skipped") + " already on the server, " + count("error") + " refused, " + busy + " to go (" + bytes(done) + " of " + bytes(total) + ")" : "No files yet.";
    finalizeButton.disabled = busy > 0 || !token || (count("done") + count("skipped") === 0 && known.size === 0);
  }

  async function check(file) {
    if (!FITS_EXT.test(file.name)) return "not a FITS file (.fit, .fits): skipped";
    if (file.size > maxBytes) return "too large: " + bytes(file.size) + " (the limit is " + bytes(maxBytes) + ")";
    if (file.size < 2880) return "too small to be a FITS file (" + file.size + " bytes)";
    const head = new TextDecoder("ascii").decode(await file.slice(0, 80).arrayBuffer());
    if (!/^SIMPLE  = {20}T/.test(head)) return "not a FITS file: it does not start with a FITS header (SIMPLE = T)";
    return null;
  }

  async function sha256(file) {
    const digest = await crypto.subtle.digest("SHA-256", await file.arrayBuffer());
    return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function send(item, tries) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", API + "?action=file&session_token=" + encodeURIComponent(token));
      xhr.setRequestHeader("X-CSRF-Token", window.CS.csrf);
      xhr.upload.onprogress = (e) => { item.sent = e.loaded; item.progress.value = e.total ? e.loaded / e.total : 0; updateTotal(); };
      xhr.onload = () => {
        let body = null;
        try { body = JSON.parse(xhr.responseText); } catch (e) { body = null; }
        if (xhr.status === 200) resolve(body);
        else reject(Object.assign(new Error(body && body.error ? body.error : "server answered " + xhr.status), { status: xhr.status }));
      };
      xhr.onerror = () => reject(Object.assign(new Error("connection lost"), { network: true }));
      const form = new FormData();
      form.append("session_token", token);
      form.append("file", item.file, item.name);
      item.result.textContent = tries ? "retrying (" + tries + ")…" : "sending…";
      xhr.send(form);
    });
  }

  async function process(item) {
    const problem = await check(item.file);
    if (problem) { setResult(item, problem.endsWith("skipped") ? "skipped" : "error", problem); return; }
    item.result.textContent = "fingerprinting…";
    item.sha = await sha256(item.file);
    if (known.has(item.sha)) { setResult(item, "skipped", "already on the server"); return; }
    await session();
    item.state = "sending";
    for (let tries = 0; ; tries++) {
      try {
        const reply = await send(item, tries);
        known.set(item.sha, item.name);
        setResult(item, reply.duplicate ? "skipped" : "done", reply.duplicate ? "already on the server" + (reply.note ? " (" + reply.note + ")" : "")
          : "received" + (reply.object ? ": " + reply.object : "") + (reply.chunk_key ? ", chunk " + reply.chunk_key : ""));
        return;
      } catch (e) {
        if (e.status === 401) { setResult(item, "error", "your session ended: log in again, then drop the files again"); return; }
        if (e.status === 404 || e.status === 409) { token = null; localStorage.removeItem(STORE_KEY); await session(); continue; }
        if (!e.network && e.status < 500) { setResult(item, "error", e.message); return; }
        if (tries + 1 >= MAX_TRIES) { setResult(item, "error", e.message + ": gave up after " + MAX_TRIES + " tries; drop the file again to resume"); return; }
        item.result.textContent = e.message + "; retrying in " + (2 ** tries) + " s";
        await new Promise((r) => setTimeout(r, 1000 * 2 ** tries));
      }
    }
  }

  function pump() {
    while (active < PARALLEL && queue.length) {
      const item = queue.shift();
      active++;
      process(item).catch((e) => setResult(item, "error", String(e.message || e))).finally(() => { active--; pump(); });
    }
    updateTotal();
  }

  function addFiles(files) {
    result.replaceChildren();
    for (const file of files) {
      const name = file.name;
      if (name.startsWith(".")) continue;
      const item = { file, name, size: file.size, state: "waiting", sent: 0 };
      items.push(item);
      addRow(item);
      queue.push(item);
    }
    pump();
  }

  async function entries(entry, out) {
    if (entry.isFile) { out.push(await new Promise((res, rej) => entry.file(res, rej))); return; }
    if (!entry.isDirectory) return;
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
      if (!batch.length) break;
      for (const child of batch) await entries(child, out);
    }
  }

  page.addEventListener("dragover", (e) => { e.preventDefault(); page.classList.add("over"); });
  page.addEventListener("dragleave", () => page.classList.remove("over"));
  page.addEventListener("drop", async (e) => {
    e.preventDefault();
    page.classList.remove("over");
    const found = [];
    const list = Array.from(e.dataTransfer.items || []).map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
    if (list.length) { for (const entry of list) await entries(entry, found); } else found.push(...e.dataTransfer.files);
    addFiles(found);
  });
  for (const id of ["pick-files", "pick-folder"]) {
    const input = document.getElementById(id);
    input.addEventListener("change", () => { addFiles(Array.from(input.files)); input.value = ""; });
  }

  finalizeButton.addEventListener("click", async () => {
    finalizeButton.disabled = true;
    const form = new FormData();
    form.append("session_token", token);
    form.append("scrub_location", scrub.checked ? "1" : "0");
    try {
      const r = await api(API + "?action=finalize", { method: "POST", body: form });
      localStorage.removeItem(STORE_KEY);
      token = null;
      known = new Map();
      resumeNote.hidden = true;
      const parts = [el("h2", {}, r.jobs + (r.jobs === 1 ? " job" : " jobs") + " created")];
      if (r.chunk_details.length) parts.push(el("ul", {}, ...r.chunk_details.map((c) => el("li", {}, (c.object_name || "unknown object") + ": " + c.frames + " frames (chunk " + c.chunk_key + ")"))));
      if (r.skipped.length) parts.push(el("h3", {}, "Chunks not stacked"), el("ul", {}, ...r.skipped.map((s) => el("li", {}, s.chunk_key + " (" + s.frames + " frames): " + s.reason))));
      parts.push(el("p", {}, el("a", { href: "/jobs", class: "button" }, "Follow the jobs")));
      result.replaceChildren(el("div", { class: "notice", id: "finalize-summary" }, ...parts));
    } catch (e) {
      result.replaceChildren(el("p", { class: "error", role: "alert" }, "Finalize failed: " + e.message));
      finalizeButton.disabled = false;
    }
  });

  window.addEventListener("beforeunload", (e) => {
    if (items.some((i) => i.state === "sending" || i.state === "waiting")) { e.preventDefault(); e.returnValue = ""; }
  });

  restore().then(updateTotal);
})();
