(function () {
  var COLORS = { installed: '#1a9850', redeployed: '#1a9850', in_stock: '#66bd63', manufactured: '#66bd63', triaged: '#a6d96a',
    second_life_ready: '#a6d96a', in_storage: '#fee08b', removed: '#fee08b', recycling_ready: '#fdae61', shipped: '#fdae61',
    received_by_recycler: '#fdae61', recycled: '#bbbbbb', flagged: '#f46d43', lost: '#d73027', quarantined: '#d73027', damaged: '#a50026' };
  window.addEventListener('load', function () {
    var el = document.getElementById('map');
    if (!el || !window.echarts) return;
    var chart = echarts.init(el), cell = 1.0, busy = false;
    function load(c) {
      if (busy) return; busy = true;
      fetch(el.dataset.url + '?cell=' + c, { credentials: 'same-origin' }).then(function (r) { return r.json(); }).then(function (d) {
        busy = false;
        chart.setOption({ animation: false,
          tooltip: { formatter: function (p) { return p.data[3] + ' — ' + p.data[2] + ' packs, worst: ' + p.data[4]; } },
          xAxis: { type: 'value', min: 73, max: 136, name: 'lon', scale: true }, yAxis: { type: 'value', min: 17, max: 54, name: 'lat', scale: true },
          grid: { left: 50, right: 20, top: 20, bottom: 60 },
          dataZoom: [{ type: 'inside', xAxisIndex: 0, filterMode: 'none' }, { type: 'inside', yAxisIndex: 0, filterMode: 'none' }],
          series: [{ type: 'scatter', data: d.cells.map(function (x) { return [x.lon, x.lat, x.packs, x.lat.toFixed(2) + ',' + x.lon.toFixed(2), x.worst]; }),
            symbolSize: function (v) { return Math.min(40, 4 + Math.sqrt(v[2]) * 2); },
            itemStyle: { color: function (p) { return COLORS[p.data[4]] || '#888'; }, opacity: 0.8 } }]
        });
      }, function () { busy = false; });
    }
    load(cell);
    chart.on('datazoom', function () {
      var opt = chart.getOption(), span = (opt.dataZoom[0].endValue - opt.dataZoom[0].startValue) || 60;
      var next = Math.max(0.05, Math.min(2, span / 60));
      if (Math.abs(next - cell) / cell > 0.4) { cell = next; load(cell); }
    });
  });
})();
