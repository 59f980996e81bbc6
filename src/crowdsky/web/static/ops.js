/* Operations page (admins): polls /web/api/ops and redraws the figures. */
"use strict";
(function () {
  const { api, el, bytes, when, ago } = window.CS;
  const $ = (id) => document.getElementById(id);
  function facts(node, pairs) { node.replaceChildren(...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])); }
  const chart = d3.select("#ops-hours").append("svg").attr("viewBox", [0, 0, 960, 160]);
  const bars = chart.append("g"), axis = chart.append("g").attr("class", "axis").attr("transform", "translate(0,140)");
  const yAxis = chart.append("g").attr("class", "axis").attr("transform", "translate(36,0)");
  async function refresh() {
    try {
      const d = await api("/web/api/ops");
      facts($("ops-depth"), Object.entries(d.depth).map(([k, v]) => [k, String(v)]));
      const b = d.raw_buffer;
      facts($("ops-buffer"), [["raw frames kept", b.files + " files, " + bytes(b.bytes)], ["disk free", b.disk_free === null ? "—" : bytes(b.disk_free) + " of " + bytes(b.disk_total)]]);
      const x = d3.scaleBand().domain(d3.range(24)).range([40, 950]).padding(0.15);
      const y = d3.scaleLinear().domain([0, Math.max(1, d3.max(d.jobs_per_hour))]).nice().range([140, 10]);
      bars.selectAll("rect").data(d.jobs_per_hour).join("rect").attr("x", (_, i) => x(i)).attr("width", x.bandwidth()).attr("y", (v) => y(v)).attr("height", (v) => 140 - y(v));
      axis.call(d3.axisBottom(x).tickFormat((i) => (i - 23 === 0 ? "now" : i - 23 + "h")).tickValues([0, 6, 12, 18, 23]));
      yAxis.call(d3.axisLeft(y).ticks(4));
      document.querySelector("#ops-workers tbody").replaceChildren(...(d.workers.length ? d.workers.map((w) => el("tr", {}, el("td", {}, w.worker), el("td", {}, when(w.last_seen) + " (" + ago(w.last_seen) + ")"), el("td", {}, w.job ? "job " + w.job + (w.progress !== undefined && w.progress !== null ? " (" + Math.round(w.progress * 100) + "%)" : "") : "idle")))
        : [el("tr", {}, el("td", { colspan: 3 }, "No worker seen yet."))]));
      document.querySelector("#ops-failures tbody").replaceChildren(...(d.failures.length ? d.failures.map((f) => el("tr", {}, el("td", {}, when(f.at)), el("td", {}, String(f.job)), el("td", {}, f.worker || "—"), el("td", {}, f.outcome), el("td", {}, f.error || "—")))
        : [el("tr", {}, el("td", { colspan: 5 }, "No failures."))]));
      $("ops-updated").textContent = "Updated " + new Date().toLocaleTimeString();
    } catch (e) { $("ops-updated").textContent = "Could not load: " + e.message; }
    setTimeout(refresh, 5000);
  }
  refresh();
})();
