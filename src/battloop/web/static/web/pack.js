(function () {
  // SOH fan chart: the P10-P90 band (P10 as a transparent base, the band width stacked on it),
  // the P50 line and the triage thresholds, from the stored forecast embedded in the page
  window.addEventListener('load', function () {
    var el = document.getElementById('chart-forecast'), src = document.getElementById('forecast-data');
    if (!el || !src || !window.echarts) return;
    var d = JSON.parse(src.textContent);
    if (!d) { el.hidden = true; return; }
    var at = function (v) { return d.dates.map(function (x, i) { return [x, v(i)]; }); };
    var lo = Math.max(0, Math.floor(Math.min.apply(null, d.p10.concat(d.thresholds.filter(function (t) { return t >= 50; }))) / 10) * 10);
    echarts.init(el).setOption({ animation: false, grid: { top: 30, bottom: 30, left: 45, right: 20 }, legend: { top: 0, data: ['P10–P90', 'P50'] },
      tooltip: { trigger: 'axis', formatter: function (ps) {
        var i = ps[0].dataIndex, f = function (v) { return v.toFixed(1) + ' %'; };
        return d.dates[i] + '<br>P90 ' + f(d.p90[i]) + '<br><b>P50 ' + f(d.p50[i]) + '</b><br>P10 ' + f(d.p10[i]); } },
      xAxis: { type: 'time' }, yAxis: { type: 'value', name: 'SOH %', min: lo, max: 100 },
      series: [
        { name: 'P10', type: 'line', stack: 'band', data: at(function (i) { return d.p10[i]; }), lineStyle: { opacity: 0 }, symbol: 'none' },
        { name: 'P10–P90', type: 'line', stack: 'band', data: at(function (i) { return d.p90[i] - d.p10[i]; }), lineStyle: { opacity: 0 },
          symbol: 'none', color: '#5470c6', areaStyle: { color: '#5470c6', opacity: 0.25 } },
        { name: 'P50', type: 'line', color: '#2f4596', data: at(function (i) { return d.p50[i]; }), symbolSize: 5,
          markLine: { symbol: 'none', silent: true, label: { formatter: '{c} %' }, lineStyle: { type: 'dashed' },
                      data: d.thresholds.filter(function (t) { return t >= lo; }).map(function (t) { return { yAxis: t }; }) } }
      ] });
  });
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
