(function () {
  window.addEventListener('load', function () {
    var el = document.getElementById('chart-telemetry');
    if (!el || !window.echarts) return;
    fetch(el.dataset.url, { credentials: 'same-origin' }).then(function (r) { return r.json(); }).then(function (d) {
      if (!d.points || !d.points.length) { el.hidden = true; document.getElementById('telemetry-empty').hidden = false; return; }
      var series = d.columns.map(function (c) {
        return { name: c, type: 'line', showSymbol: false, yAxisIndex: (c === 'voltage_v' || c === 'current_a') ? 0 : 1,
                 data: d.points.map(function (p) { return [p.ts, p.values[c]]; }) };
      });
      echarts.init(el).setOption({ animation: false, tooltip: { trigger: 'axis' }, legend: { top: 0 }, grid: { top: 40, bottom: 70 }, xAxis: { type: 'time' },
        yAxis: [{ type: 'value', name: 'V / A' }, { type: 'value', name: '% / °C' }], dataZoom: [{ type: 'inside' }, {}], series: series });
    });
  });
})();
