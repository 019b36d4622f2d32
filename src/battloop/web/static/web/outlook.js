(function () {
  // Retirements per quarter: P50 bars, P10-P90 whiskers, cumulative P50 line.
  function retire() {
    var el = document.getElementById('chart-retire'), src = document.getElementById('data-retire');
    if (!el || !src || !window.echarts) return;
    var d = JSON.parse(src.textContent);
    var whiskers = d.quarters.map(function (q, i) { return [i, d.p10[i], d.p90[i]]; });
    echarts.init(el).setOption({
      animation: false, tooltip: { trigger: 'axis' }, legend: { bottom: 0 },
      grid: { left: 45, right: 45, top: 10, bottom: 60 },
      xAxis: { type: 'category', data: d.quarters, axisLabel: { rotate: 45 } },
      yAxis: [{ type: 'value', name: d.labels.per_quarter }, { type: 'value', name: d.labels.cumulative }],
      series: [
        { name: 'P50', type: 'bar', data: d.p50, itemStyle: { color: '#0b6e4f' } },
        { name: 'P10–P90', type: 'custom', data: whiskers, renderItem: function (params, api) {
            var x = api.coord([api.value(0), api.value(1)]), y = api.coord([api.value(0), api.value(2)]);
            return { type: 'line', shape: { x1: x[0], y1: x[1], x2: y[0], y2: y[1] }, style: { stroke: '#333', lineWidth: 1.5 } };
          } },
        { name: d.labels.cum_p50, type: 'line', yAxisIndex: 1, data: d.cum_p50, itemStyle: { color: '#c05a00' } }
      ] });
  }
  window.addEventListener('load', retire);
})();
