/* An all-sky map (Aitoff, RA increasing to the left, centred on RA 12h) drawn with D3 and
   d3-geo-projection: zoom and pan, hover, optional rectangle selection, and dots that are
   aggregated per HEALPix cell (computed by the server) when zoomed out. */
"use strict";
window.SkyMap = function (container, options) {
  const opts = Object.assign({ onHover: null, onSelect: null, onClick: null, colour: () => "#7cc4ff" }, options);
  const width = 960, height = 480;
  const projection = d3.geoAitoff().rotate([0, 0]).fitExtent([[8, 8], [width - 8, height - 8]], { type: "Sphere" });
  const path = d3.geoPath(projection);
  const svg = d3.select(container).append("svg").attr("viewBox", [0, 0, width, height]).attr("focusable", "false");
  const view = svg.append("g");
  view.append("path").attr("class", "sphere").attr("d", path({ type: "Sphere" }));
  view.append("path").attr("class", "graticule").attr("d", path(d3.geoGraticule().step([30, 15])()));
  const labels = view.append("g");
  for (let ra = 0; ra < 360; ra += 60) {
    const p = projection([180 - ra === 180 ? -180 + 1e-6 : 180 - ra, 0]);
    if (p) labels.append("text").attr("class", "label").attr("x", p[0] + 2).attr("y", p[1] - 3).text(ra / 15 + "h");
  }
  for (const dec of [-60, -30, 30, 60]) {
    const p = projection([179.9, dec]);
    if (p) labels.append("text").attr("class", "label").attr("x", p[0] + 4).attr("y", p[1] + 3).text((dec > 0 ? "+" : "") + dec + "°");
  }
  const dotsLayer = view.append("g");
  let transform = d3.zoomIdentity;
  let points = [], cells = {}, selected = null, dimmed = null;

  const lonOf = (ra) => { let lon = 180 - ra; if (lon > 180) lon -= 360; if (lon <= -180) lon += 360; return lon; };
  const project = (ra, dec) => projection([lonOf(ra), dec]);

  function draw() {
    const k = transform.k;
    let level = null;
    if (points.length > 400) level = k < 2.5 ? "16" : k < 7 ? "64" : null;
    let data;
    if (level && cells[level]) {
      data = cells[level].map((c) => ({ cell: true, n: c[1], ra: c[2], dec: c[3], filter: c[4], ids: null, key: "c" + level + "-" + c[0] }));
    } else {
      data = points;
    }
    const max = d3.max(data, (d) => d.n || 1) || 1;
    const radius = d3.scaleSqrt().domain([1, max]).range([3.5, level ? 14 : 6]);
    const sel = dotsLayer.selectAll("circle").data(data, (d) => d.key);
    sel.exit().remove();
    sel.enter().append("circle").attr("class", "dot")
      .on("mouseenter", (event, d) => opts.onHover && opts.onHover(d, event))
      .on("mousemove", (event, d) => opts.onHover && opts.onHover(d, event))
      .on("mouseleave", () => opts.onHover && opts.onHover(null))
      .on("click", (event, d) => opts.onClick && !d.cell && opts.onClick(d))
      .merge(sel)
      .each(function (d) {
        const p = project(d.ra, d.dec);
        d.x = p ? p[0] : -999; d.y = p ? p[1] : -999;
      })
      .attr("cx", (d) => d.x).attr("cy", (d) => d.y)
      .attr("r", (d) => radius(d.n || 1) / Math.sqrt(k))
      .attr("fill", (d) => opts.colour(d.filter))
      .classed("sel", (d) => !d.cell && selected !== null && selected.has(d.id))
      .classed("dim", (d) => !d.cell && dimmed !== null && !dimmed.has(d.id));
  }

  const zoom = d3.zoom().scaleExtent([1, 40]).translateExtent([[0, 0], [width, height]])
    .on("zoom", (event) => { transform = event.transform; view.attr("transform", transform); draw(); });
  svg.call(zoom);

  let brushLayer = null;
  const brush = d3.brush().extent([[0, 0], [width, height]]).on("end", (event) => {
    if (!event.selection) { opts.onSelect && opts.onSelect(null); return; }
    const [[x0, y0], [x1, y1]] = event.selection;
    const ids = new Set();
    for (const d of points) {
      const p = project(d.ra, d.dec);
      if (!p) continue;
      const [sx, sy] = transform.apply(p);
      if (sx >= x0 && sx <= x1 && sy >= y0 && sy <= y1) ids.add(d.id);
    }
    opts.onSelect && opts.onSelect(ids);
  });

  return {
    setData(newPoints, newCells) { points = newPoints; cells = newCells || {}; draw(); },
    setHighlight(selectedIds, visibleIds) { selected = selectedIds; dimmed = visibleIds; draw(); },
    brushMode(on) {
      if (on && !brushLayer) { brushLayer = svg.append("g").attr("class", "brush").call(brush); }
      if (!on && brushLayer) { brushLayer.remove(); brushLayer = null; }
    },
    clearBrush() { if (brushLayer) brushLayer.call(brush.move, null); },
    zoomBy(factor) { svg.transition().duration(200).call(zoom.scaleBy, factor); },
    resetZoom() { svg.transition().duration(200).call(zoom.transform, d3.zoomIdentity); },
  };
};

window.filterColour = (function () {
  const fixed = { IRCUT: "#ff7b72", LP: "#58a6ff", "": "#c9d1d9" };
  const scheme = ["#ffd166", "#7ee787", "#d2a8ff", "#ffa657", "#79c0ff", "#f778ba"];
  const seen = {};
  return function (filter) {
    const key = (filter || "").toUpperCase();
    if (key in fixed) return fixed[key];
    if (!(key in seen)) seen[key] = scheme[Object.keys(seen).length % scheme.length];
    return seen[key];
  };
})();
