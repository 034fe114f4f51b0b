// pgqueue dashboard: the little JavaScript the pages need beyond htmx.
// - charts of finished jobs over time (uPlot), fed by GET /api/series (every 2 s for short windows)
// - a banner when live updates stop arriving (the dashboard or database is down)
// - confirmation for forms marked data-confirm (inline handlers are barred by our CSP)
(function () {
  "use strict";

  // -- stale-data banner ---------------------------------------------------------
  var stale = document.getElementById("stale");
  var lastGood = new Date();
  function markStale() {
    if (!stale || !stale.hidden) return;
    document.getElementById("stale-since").textContent = lastGood.toISOString().slice(11, 19) + " UTC";
    stale.hidden = false;
  }
  function markFresh() { lastGood = new Date(); if (stale) stale.hidden = true; }
  document.body.addEventListener("htmx:sendError", markStale);
  document.body.addEventListener("htmx:responseError", markStale);
  document.body.addEventListener("htmx:afterRequest", function (e) {
    if (e.detail.successful) markFresh();
  });

  // -- confirmations ---------------------------------------------------------------
  document.addEventListener("submit", function (e) {
    var message = e.target.getAttribute && e.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) e.preventDefault();
  }, true);

  // -- charts ----------------------------------------------------------------------
  var charts = document.getElementById("charts");
  if (!charts || typeof uPlot === "undefined") return;
  var url = charts.getAttribute("data-series");
  var plots = {};
  var specs = [
    { id: "chart-succeeded", key: "succeeded", label: "Succeeded", color: "#1f8a4c" },
    { id: "chart-failed", key: "failed", label: "Failed", color: "#c62f2f" },
  ];

  function utc(ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }
  // Axis labels in UTC, 24-hour, like every table; precise enough that ticks differ.
  function ticks(data) {
    var span = data.window_seconds;
    var from = span > 86400 ? 5 : 11, to = span <= 900 ? 19 : 16;  // MM-DD HH:MM / HH:MM:SS
    return function (u, splits) {
      return splits.map(function (ts) {
        return new Date(ts * 1e3).toISOString().slice(from, to).replace("T", " ");
      });
    };
  }

  function draw(data) {
    var xs = data.buckets.map(function (b) { return Date.parse(b.at) / 1000; });
    specs.forEach(function (spec) {
      var el = document.getElementById(spec.id);
      var ys = data.buckets.map(function (b) { return b[spec.key]; });
      if (plots[spec.id]) { plots[spec.id].setData([xs, ys]); return; }
      plots[spec.id] = new uPlot({
        width: Math.max(el.clientWidth, 200), height: 180, tzDate: utc,
        legend: { show: true },
        scales: { y: { range: function (u, min, max) { return [0, Math.max(1, max)]; } } },
        series: [{}, { label: spec.label, stroke: spec.color, width: 2,
                       fill: spec.color + "22", points: { show: false } }],
        axes: [{ values: ticks(data) }, { size: 40 }],
      }, [xs, ys], el);
    });
  }

  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
      .then(function (data) { draw(data); markFresh(); })
      .catch(markStale);
  }

  window.addEventListener("resize", function () {
    specs.forEach(function (spec) {
      var el = document.getElementById(spec.id);
      if (plots[spec.id]) plots[spec.id].setSize({ width: Math.max(el.clientWidth, 200), height: 180 });
    });
  });
  refresh();
  // As often as the tables below: long windows are costly to read and change slowly.
  setInterval(refresh, 1000 * (Number(charts.getAttribute("data-poll")) || 2));
})();
