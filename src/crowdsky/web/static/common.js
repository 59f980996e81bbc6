/* Shared helpers: CSRF-carrying fetch, formatting, safe DOM building (text only). */
"use strict";
window.CS = (function () {
  const meta = document.querySelector('meta[name="csrf-token"]');
  const csrf = meta ? meta.content : "";

  async function api(url, options) {
    const opts = Object.assign({ credentials: "same-origin" }, options || {});
    opts.headers = Object.assign({ "X-CSRF-Token": csrf }, opts.headers || {});
    const response = await fetch(url, opts);
    let body = null;
    const type = response.headers.get("content-type") || "";
    if (type.includes("json")) body = await response.json();
    if (!response.ok) {
      const text = body && (body.error || body.detail) ? (body.error || body.detail) : response.status + " " + response.statusText;
      const err = new Error(typeof text === "string" ? text : JSON.stringify(text));
      err.status = response.status;
      throw err;
    }
    return body;
  }

  /* el("td", {class: "num"}, "text", child...) — text is always a text node, never HTML. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function bytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["B", "kB", "MB", "GB", "TB"];
    let i = 0, v = n;
    while (v >= 1000 && i < units.length - 1) { v /= 1000; i++; }
    return (i ? v.toFixed(v < 10 ? 1 : 0) : v) + " " + units[i];
  }
  function when(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", "") : "—"; }
  function seconds(s) {
    if (s === null || s === undefined) return "—";
    return s >= 3600 ? (s / 3600).toFixed(1) + " h" : s >= 60 ? (s / 60).toFixed(1) + " min" : Math.round(s) + " s";
  }
  function ago(iso) {
    if (!iso) return "never";
    const s = (Date.now() - Date.parse(iso)) / 1000;
    return s < 90 ? Math.round(s) + " s ago" : s < 5400 ? Math.round(s / 60) + " min ago" : s < 172800 ? Math.round(s / 3600) + " h ago" : Math.round(s / 86400) + " days ago";
  }

  /* Forms with data-confirm ask before they submit. */
  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.matches && form.matches("form.confirm") && !window.confirm(form.dataset.confirm)) event.preventDefault();
  });

  return { api, el, bytes, when, seconds, ago, csrf };
})();
