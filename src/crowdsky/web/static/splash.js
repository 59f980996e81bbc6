/* Splash page: the public sky coverage, one dot per HEALPix cell with public stacks. */
"use strict";
(function () {
  const container = document.getElementById("coverage-map");
  const summary = document.getElementById("coverage-summary");
  const tooltip = document.createElement("div");
  tooltip.className = "tooltip";
  tooltip.hidden = true;
  document.body.append(tooltip);
  const count = (n, one, many) => n + " " + (n === 1 ? one : many);
  const map = window.SkyMap(container, {
    colour: window.filterColour,
    onHover(d, event) {
      if (!d) { tooltip.hidden = true; return; }
      tooltip.textContent = count(d.n, "public stack", "public stacks") + " near RA " + (d.ra / 15).toFixed(1) + "h, Dec " + d.dec.toFixed(0) + "°";
      tooltip.style.left = event.clientX + 12 + "px";
      tooltip.style.top = event.clientY + 12 + "px";
      tooltip.hidden = false;
    },
  });
  window.CS.api("/web/api/coverage").then((data) => {
    const points = data.cells.map((c) => ({ key: "p" + c[0], id: c[0], n: c[1], ra: c[2], dec: c[3], filter: c[4] }));
    map.setData(points, {});
    const total = points.reduce((a, p) => a + p.n, 0);
    summary.textContent = total ? count(total, "public stack", "public stacks") + " in " + count(points.length, "sky cell", "sky cells") + "." : "No public stacks yet: yours can be the first (choose it on your account page).";
  }).catch(() => { summary.textContent = "The sky coverage could not be loaded."; });
})();
