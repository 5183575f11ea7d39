/* The dashboard's charts (uPlot, vendored next to this file). Data comes from the page's
   JSON block; labels are set as text by uPlot (textContent), never as HTML. */
(function () {
  "use strict";
  var d = JSON.parse(document.getElementById("le-data").textContent);
  if (!d.days.length || typeof uPlot === "undefined") return;
  var COLORS = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#65a30d", "#dc2626", "#6b7280"];
  // days as categories 0..n-1: whole days on the axis, bars centred on them
  var x = d.days.map(function (_, i) { return i; });
  function dayLabel(v) { return Number.isInteger(v) && d.days[v] ? d.days[v].slice(5) : ""; }

  function bars(i, n) {
    return uPlot.paths.bars({ size: [0.8 / n, 40], align: 0, gap: 1 });
  }

  function chart(id, series, opts) {
    var el = document.getElementById(id);
    if (!el) return;
    opts = opts || {};
    var data = [x].concat(series.map(function (s) { return s.values; }));
    var n = series.length;
    var cfg = {
      width: el.clientWidth || 600,
      height: 220,
      scales: {
        x: { time: false, range: function () { return [-0.6, Math.max(x.length, 3) - 0.4]; } },
        y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } },
      },
      axes: [
        { space: 50, incrs: [1, 2, 5, 7, 14, 28, 56], values: function (u, vals) { return vals.map(dayLabel); } },
        { size: 72, values: opts.money ? function (u, vals) { return vals.map(function (v) { return "$" + (+v.toPrecision(3)); }); } : undefined },
      ],
      series: [{ label: "day", value: function (u, v) { return v == null ? "-" : d.days[v]; } }].concat(series.map(function (s, i) {
        var color = s.color || COLORS[i % COLORS.length];
        var cfgS = { label: s.label, stroke: color, width: 2, points: { show: x.length < 40 } };
        if (opts.bars) { cfgS.fill = color + "cc"; cfgS.paths = bars(i, n); cfgS.points = { show: false }; cfgS.width = 0; }
        if (opts.money) cfgS.value = function (u, v) { return v == null ? "-" : "$" + v.toFixed(4); };
        return cfgS;
      })),
      legend: { live: true },
      cursor: { drag: { x: false, y: false } },
    };
    var plot = new uPlot(cfg, data, el);
    window.addEventListener("resize", function () { plot.setSize({ width: el.clientWidth, height: 220 }); });
  }

  function byModel(obj) {
    return Object.keys(obj).map(function (m, i) { return { label: m, values: obj[m], color: COLORS[i % COLORS.length] }; });
  }

  var p = d.per_day;
  chart("chart-calls", [
    { label: "calls", values: p.calls, color: "#2563eb" },
    { label: "failed", values: p.errors, color: "#dc2626" },
  ], { bars: true });
  chart("chart-latency", [
    { label: "p50", values: p.p50, color: "#059669" },
    { label: "p95", values: p.p95, color: "#d97706" },
  ]);
  chart("chart-cost", byModel(d.cost_by_model), { money: true });
  chart("chart-tokens", [
    { label: "input", values: p.input_tokens, color: "#7c3aed" },
    { label: "output", values: p.output_tokens, color: "#0891b2" },
  ], { bars: true });
  chart("chart-models", byModel(d.calls_by_model));
})();
