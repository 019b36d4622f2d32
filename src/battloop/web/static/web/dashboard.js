(function () {
  function pie(id, dataId) {
    var el = document.getElementById(id), src = document.getElementById(dataId);
    if (!el || !src || !window.echarts) return;
    var data = JSON.parse(JSON.parse(src.textContent));
    echarts.init(el).setOption({ animation: false, tooltip: { trigger: 'item' }, series: [{ type: 'pie', radius: ['35%', '70%'], data: data, label: { formatter: '{b}: {c}' } }] });
  }
  window.addEventListener('load', function () { pie('chart-state', 'data-state'); pie('chart-chem', 'data-chem'); });
})();
