/* Stacks page: sky map, timeline (range brush), gallery with lightbox and a sortable, paged
   table, all over one set of stacks; filters narrow it, map and timeline selections
   intersect; the selection downloads as one streamed ZIP. */
"use strict";
(function () {
  const { api, el, bytes, when, seconds } = window.CS;
  const PAGE = 50, GALLERY_PAGE = 24, TIMELINE_DOTS = 1500;
  const colour = window.filterColour;
  const $ = (id) => document.getElementById(id);
  const tooltip = $("tooltip");
  let stacks = [], byId = new Map();
  let filtered = [], current = [];
  let mapSel = null, timeSel = null;
  let sortKey = "start", sortDir = -1, page = 0, galleryShown = GALLERY_PAGE;

  const map = window.SkyMap($("skymap"), {
    colour,
    onHover(d, event) {
      if (!d) { tooltip.hidden = true; return; }
      tooltip.textContent = d.cell ? d.n + " stacks here (zoom in to see them)"
        : (d.object || "unknown object") + " — " + when(d.start) + " — " + (d.filter || "no filter") + ", " + d.aligned + " frames";
      tooltip.style.left = Math.min(event.clientX + 12, window.innerWidth - 200) + "px";
      tooltip.style.top = event.clientY + 12 + "px";
      tooltip.hidden = false;
    },
    onSelect(ids) { mapSel = ids; update(); },
    onClick(d) { openLightbox(d); },
  });
  $("zoom-in").addEventListener("click", () => map.zoomBy(2));
  $("zoom-out").addEventListener("click", () => map.zoomBy(0.5));
  $("zoom-reset").addEventListener("click", () => map.resetZoom());
  const brushButton = $("brush-toggle");
  brushButton.addEventListener("click", () => {
    const on = brushButton.getAttribute("aria-pressed") !== "true";
    brushButton.setAttribute("aria-pressed", on ? "true" : "false");
    brushButton.textContent = on ? "Pan and zoom" : "Select area";
    map.brushMode(on);
  });

  // -- timeline --------------------------------------------------------------------------
  const tl = { width: 960, height: 110, margin: 24 };
  const tlSvg = d3.select("#timeline").append("svg").attr("viewBox", [0, 0, tl.width, tl.height]);
  const tlAxis = tlSvg.append("g").attr("class", "axis").attr("transform", "translate(0," + (tl.height - tl.margin) + ")");
  const tlDots = tlSvg.append("g");
  let x = d3.scaleUtc();
  const tlBrush = d3.brushX().extent([[tl.margin, 4], [tl.width - tl.margin, tl.height - tl.margin]]).on("end", (event) => {
    timeSel = event.selection ? event.selection.map((v) => x.invert(v).getTime()) : null;
    update();
  });
  const tlBrushG = tlSvg.append("g").attr("class", "brush").call(tlBrush);

  function drawTimeline() {
    const times = filtered.filter((s) => s.t !== null);
    const extent = d3.extent(times, (s) => s.t);
    if (extent[0] === undefined) { extent[0] = Date.now() - 864e5; extent[1] = Date.now(); }
    if (extent[0] === extent[1]) { extent[0] -= 36e5; extent[1] += 36e5; }
    x = d3.scaleUtc().domain(extent).range([tl.margin, tl.width - tl.margin]).nice();
    tlAxis.call(d3.axisBottom(x).ticks(8));
    if (times.length > TIMELINE_DOTS) {
      // many stacks: a histogram (one bar per time bin) instead of one dot each
      tlDots.selectAll("circle").remove();
      const bins = d3.bin().value((s) => s.t).domain(x.domain()).thresholds(x.ticks(120).map(Number))(times);
      const y = d3.scaleLinear().domain([0, d3.max(bins, (b) => b.length) || 1]).range([tl.height - tl.margin, 8]);
      tlDots.selectAll("rect").data(bins).join("rect").attr("class", "bar")
        .attr("x", (b) => x(b.x0) + 0.5).attr("width", (b) => Math.max(1, x(b.x1) - x(b.x0) - 1))
        .attr("y", (b) => y(b.length)).attr("height", (b) => y(0) - y(b.length));
    } else {
      tlDots.selectAll("rect").remove();
      const circles = tlDots.selectAll("circle").data(times, (s) => s.id);
      circles.exit().remove();
      circles.enter().append("circle").attr("class", "dot").attr("r", 3.5)
        .merge(circles).attr("cx", (s) => x(s.t)).attr("cy", (s) => 10 + s.jitter * (tl.height - tl.margin - 20)).attr("fill", (s) => colour(s.filter));
    }
    tlBrushG.call(tlBrush.move, null);
  }

  // -- filters and selection -------------------------------------------------------------
  function applyFilters() {
    const object = $("f-object").value.trim().toLowerCase();
    const filter = $("f-filter").value, telescope = $("f-telescope").value;
    const from = $("f-from").value ? Date.parse($("f-from").value + "T00:00:00Z") : null;
    const to = $("f-to").value ? Date.parse($("f-to").value + "T23:59:59Z") : null;
    filtered = stacks.filter((s) => (!object || (s.object || "").toLowerCase().includes(object))
      && (!filter || (s.filter || "(none)") === filter) && (!telescope || (s.telescope || "(none)") === telescope)
      && (from === null || (s.t !== null && s.t >= from)) && (to === null || (s.t !== null && s.t <= to)));
    mapSel = null; timeSel = null;
    map.clearBrush();
    map.setData(filtered, filtered.length === stacks.length ? cells : {});
    drawTimeline();
    update();
  }

  function update() {
    const inTime = (s) => timeSel === null || (s.t !== null && s.t >= timeSel[0] && s.t <= timeSel[1]);
    const selecting = mapSel !== null || timeSel !== null;
    current = selecting ? filtered.filter((s) => (mapSel === null || mapSel.has(s.id)) && inTime(s)) : filtered;
    const ids = new Set(current.map((s) => s.id));
    map.setHighlight(selecting ? ids : null, selecting ? ids : null);
    tlDots.selectAll("circle").classed("dim", (s) => selecting && !ids.has(s.id)).classed("sel", (s) => selecting && ids.has(s.id));
    const size = current.reduce((a, s) => a + (s.size || 0), 0);
    $("selection-text").textContent = (current.length + (current.length === 1 ? " stack" : " stacks") + (selecting ? " selected" : "") + (filtered.length < stacks.length ? " match the filters" : "")) + " (" + bytes(size) + ")";
    $("zip-ids").value = current.map((s) => s.id).join(",");
    $("zip-button").disabled = current.length === 0;
    page = 0;
    galleryShown = GALLERY_PAGE;
    drawGallery(); drawTable();
  }

  // -- gallery and lightbox --------------------------------------------------------------
  function drawGallery() {
    const shown = current.slice(0, galleryShown);
    $("gallery").replaceChildren(...shown.map((s) => el("button", { type: "button", class: "thumb", dataset: { stack: s.id }, "aria-label": "Preview " + (s.object || "stack") + " of " + when(s.start), onclick: () => openLightbox(s) },
      s.thumb ? el("img", { src: "/web/api/stacks/" + s.id + "/thumbnail", alt: "", loading: "lazy", width: 150, height: 150 }) : el("span", { class: "noimg" }, "no preview"),
      el("span", { class: "cap" }, (s.object || "unknown") + " · " + when(s.start).slice(0, 10)))));
    if (!current.length) $("gallery").append(el("p", {}, stacks.length ? "No stack matches." : "No stacks yet: upload a night and they appear here."));
    $("gallery-more").hidden = current.length <= galleryShown;
  }
  $("gallery-more").addEventListener("click", () => { galleryShown += GALLERY_PAGE * 2; drawGallery(); });

  function fact(name, value) { return [el("dt", {}, name), el("dd", {}, value === null || value === undefined ? "—" : String(value))]; }
  const num = (v, digits, unit) => (v === null || v === undefined ? null : v.toFixed(digits) + unit);
  function pointing(s) {
    // where the mount said it pointed, and how far that is from the solved centre
    if (s.mount_ra === null || s.mount_ra === undefined || s.ra === null) return null;
    const rad = Math.PI / 180;
    const dRa = (((s.mount_ra - s.ra + 540) % 360) - 180) * Math.cos(s.dec * rad);
    const off = Math.hypot(dRa, s.mount_dec - s.dec) * 60;
    return "RA " + s.mount_ra.toFixed(3) + "°, Dec " + s.mount_dec.toFixed(3) + "° (" + off.toFixed(1) + "′ off)";
  }
  function solveFacts(s) {
    // plate_solved: true, false (with the worker's reason) or null (never attempted)
    if (s.solved === null || s.solved === undefined) return fact("Plate solve", "not attempted");
    if (!s.solved) return fact("Plate solve", "not solved" + (s.solve_message ? ": " + s.solve_message : ""));
    return [...fact("Plate solve", "solved"),
      ...fact("Telescope pointing", pointing(s)),
      ...fact("Pixel scale", num(s.scale, 3, "″/px")), ...fact("Rotation", num(s.rotation, 2, "°")),
      ...fact("Residual", num(s.residual, 2, "″"))];
  }
  function openLightbox(s) {
    $("lb-title").textContent = s.object || "Unknown object";
    const img = $("lb-image");
    if (s.thumb) { img.src = "/web/api/stacks/" + s.id + "/thumbnail"; img.alt = "Preview of " + (s.object || "the stack"); img.hidden = false; }
    else { img.removeAttribute("src"); img.hidden = true; }
    $("lb-facts").replaceChildren(
      ...fact("Observed (UTC)", when(s.start) + (s.end ? " – " + when(s.end).slice(11) : "")),
      ...fact("Frames used", s.aligned + " of " + s.frames + " (" + (s.frames - s.aligned) + " rejected)"),
      ...fact("Exposure", seconds(s.exptime)), ...fact("Stars detected", s.stars),
      ...fact("Position", s.ra === null ? null : "RA " + s.ra.toFixed(4) + "°, Dec " + s.dec.toFixed(4) + "°" + (s.solved ? " (plate solution)" : " (telescope pointing)")),
      ...fact("Filter", s.filter), ...fact("Telescope", s.telescope), ...fact("Chunk", s.chunk_key), ...fact("Size", bytes(s.size)),
      ...solveFacts(s));
    $("lb-download").href = "/web/api/stacks/" + s.id + "/fits";
    $("lb-cube").href = "/web/api/stacks/" + s.id + "/fits?format=cube";
    $("lb-tiff").href = "/web/api/stacks/" + s.id + "/fits?format=tiff";
    $("lightbox").showModal();
  }
  $("lb-close").addEventListener("click", () => $("lightbox").close());

  // -- table -----------------------------------------------------------------------------
  function drawTable() {
    const rows = current.slice().sort((a, b) => {
      const va = a[sortKey], vb = b[sortKey];
      if (va === vb) return 0;
      if (va === null || va === undefined) return 1;
      if (vb === null || vb === undefined) return -1;
      return (va < vb ? -1 : 1) * sortDir;
    });
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    page = Math.min(page, pages - 1);
    const slice = rows.slice(page * PAGE, page * PAGE + PAGE);
    document.querySelector("#stack-table tbody").replaceChildren(...slice.map((s) => el("tr", { dataset: { stack: s.id } },
      el("td", {}, s.object || "—"), el("td", {}, when(s.start)), el("td", {}, s.filter || "—"), el("td", {}, s.telescope || "—"),
      el("td", { class: "num" }, s.aligned + "/" + s.frames), el("td", { class: "num" }, seconds(s.exptime)), el("td", { class: "num" }, s.stars === null ? "—" : s.stars),
      el("td", { class: "num" }, bytes(s.size)), el("td", {}, el("a", { href: "/web/api/stacks/" + s.id + "/fits", "aria-label": "Download FITS of " + (s.object || "stack") + " " + when(s.start) }, "FITS")))));
    $("page-text").textContent = "Page " + (page + 1) + " of " + pages;
    $("page-prev").disabled = page === 0;
    $("page-next").disabled = page >= pages - 1;
  }
  $("page-prev").addEventListener("click", () => { page--; drawTable(); });
  $("page-next").addEventListener("click", () => { page++; drawTable(); });
  for (const button of document.querySelectorAll("#stack-table th button")) {
    button.addEventListener("click", () => {
      const key = button.dataset.sort;
      sortDir = key === sortKey ? -sortDir : (key === "object" || key === "filter" || key === "telescope" ? 1 : -1);
      sortKey = key;
      for (const b of document.querySelectorAll("#stack-table th button")) b.removeAttribute("data-dir");
      button.dataset.dir = sortDir > 0 ? "asc" : "desc";
      page = 0; drawTable();
    });
  }
  for (const id of ["f-object", "f-filter", "f-telescope", "f-from", "f-to"]) $(id).addEventListener("input", applyFilters);
  $("clear-selection").addEventListener("click", () => { map.clearBrush(); tlBrushG.call(tlBrush.move, null); mapSel = null; timeSel = null; update(); });

  // -- load ------------------------------------------------------------------------------
  let cells = {};
  function options(select, values) {
    for (const v of values) select.append(el("option", { value: v }, v));
  }
  api("/web/api/stacks").then((data) => {
    const c = data.columns;
    stacks = c.id.map((id, i) => ({
      id, job_id: c.job_id[i], object: c.object[i], chunk_key: c.chunk_key[i], filter: c.filter[i], telescope: c.telescope[i],
      ra: c.ra[i], dec: c.dec[i], start: c.start[i], end: c.end[i], frames: c.frames[i], aligned: c.aligned[i],
      exptime: c.exptime[i], stars: c.stars[i], size: c.size[i], thumb: c.thumb[i], key: "s" + id,
      solved: c.solved[i], solve_message: c.solve_message[i], scale: c.scale[i], rotation: c.rotation[i],
      residual: c.residual[i], mount_ra: c.mount_ra[i], mount_dec: c.mount_dec[i],
      t: c.start[i] ? Date.parse(c.start[i]) : null, jitter: ((id * 2654435761) % 1000) / 1000,
    }));
    byId = new Map(stacks.map((s) => [s.id, s]));
    cells = data.cells;
    const uniq = (f) => [...new Set(stacks.map(f))].sort();
    options($("f-filter"), uniq((s) => s.filter || "(none)"));
    options($("f-telescope"), uniq((s) => s.telescope || "(none)"));
    for (const o of uniq((s) => s.object || "").filter(Boolean).slice(0, 500)) $("objects").append(el("option", { value: o }));
    $("legend").replaceChildren(...uniq((s) => s.filter || "").map((f) => { const span = el("span", {}, f || "no filter"); span.style.setProperty("--c", colour(f)); return span; }));
    applyFilters();
    document.body.dataset.stacksReady = "1";
  }).catch((e) => { $("selection-text").textContent = "Could not load your stacks: " + e.message; });
})();
