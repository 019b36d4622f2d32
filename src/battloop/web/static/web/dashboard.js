(function () {
  function pie(id, dataId) {
    var el = document.getElementById(id), src = document.getElementById(dataId);
    if (!el || !src || !window.echarts) return;
    var data = JSON.parse(JSON.parse(src.textContent));
    echarts.init(el).setOption({ animation: false, tooltip: { trigger: 'item' }, series: [{ type: 'pie', radius: ['35%', '70%'], data: data, label: { formatter: '{b}: {c}' } }] });
  }
  function soh() {
    var el = document.getElementById('chart-soh'), src = document.getElementById('data-soh');
    if (!el || !src || !window.echarts) return;
    var d = JSON.parse(JSON.parse(src.textContent));
    echarts.init(el).setOption({ animation: false, tooltip: {}, grid: { left: 40, right: 10, top: 10, bottom: 40 },
      xAxis: { type: 'category', data: d.labels, name: 'SOH %', nameLocation: 'middle', nameGap: 28 }, yAxis: { type: 'value' },
      series: [{ type: 'bar', data: d.counts, itemStyle: { color: '#0b6e4f' } }] });
  }
  window.addEventListener('load', function () { pie('chart-state', 'data-state'); pie('chart-chem', 'data-chem'); soh(); });
})();
