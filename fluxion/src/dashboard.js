// FluxION dashboard: status cards and the price/plan chart on a canvas. Every URL is
// relative so the page works under Home Assistant ingress.
(function () {
  'use strict';
  var $ = function (id) { return document.getElementById(id); };
  var COLORS = { ForceCharge: '#3a9d5d', ForceDischarge: '#e07b39', SelfUse: '#b8c0cc', Hold: '#2b2d42' };
  var NAMES = { ForceCharge: 'Force charge', ForceDischarge: 'Force discharge', SelfUse: 'Self use', Hold: 'Hold' };
  var timeZone;
  var currency = '';
  var planAt = null;
  var lastPlan = null;

  function clock(iso, withDay) {
    var opts = { hour: '2-digit', minute: '2-digit', hour12: false };
    if (withDay) { opts.weekday = 'short'; }
    if (timeZone) { opts.timeZone = timeZone; }
    try { return new Date(iso).toLocaleTimeString([], opts); } catch (e) { return iso; }
  }

  function money(v) { return v.toFixed(2) + (currency ? ' ' + currency : ''); }

  function showStatus(s) {
    if (s.time_zone) { timeZone = s.time_zone; }
    if (s.currency) { currency = s.currency.symbol; }
    $('savings').textContent = s.value ? s.value.text : '–';
    var notes = $('notes'), noteList = $('note-list');
    noteList.innerHTML = '';
    (s.notes || []).forEach(function (n) {
      var li = document.createElement('li');
      li.textContent = n;
      noteList.appendChild(li);
    });
    notes.style.display = s.notes && s.notes.length ? 'block' : 'none';
    $('soc').textContent = s.soc == null ? '–' : s.soc.toFixed(1) + ' %';
    // A select combination that is no mode of ours is shown as read, never as "unknown".
    $('mode').textContent = s.current_mode ? NAMES[s.current_mode] : (s.inverter || 'unknown');
    var failure = $('failure');
    failure.style.display = s.failure ? 'block' : 'none';
    failure.textContent = '';
    if (s.failure) {
      var when = document.createElement('span');
      when.className = 'when';
      when.textContent = clock(s.failure.at, true);
      failure.appendChild(when);
      var retry = s.failure.retry_at ? ' (attempt ' + s.failure.attempts + ', next at ' + clock(s.failure.retry_at) + ')' : '';
      failure.appendChild(document.createTextNode(s.failure.message + retry));
    }
    $('freshness').textContent = s.freshness ? 'Data freshness: ' + s.freshness : '';
    $('wanted').textContent = s.wanted_mode ? NAMES[s.wanted_mode] : '–';
    $('debug').style.display = s.debug_mode ? 'block' : 'none';
    var blocked = $('blocked');
    blocked.style.display = s.blocked ? 'block' : 'none';
    blocked.textContent = s.blocked ? 'Not following the plan: ' + s.blocked : '';
    var list = $('changes');
    list.innerHTML = '';
    (s.next_changes.length ? s.next_changes : [null]).forEach(function (c) {
      var li = document.createElement('li');
      li.textContent = c ? clock(c.at, true) + ' → ' + NAMES[c.mode] : 'none planned';
      list.appendChild(li);
    });
    if (s.plan_generated_at !== planAt) {
      planAt = s.plan_generated_at;
      loadPlan();
    }
  }

  function loadPlan() {
    fetch('api/plan').then(function (r) {
      if (!r.ok) { return r.json().then(function (e) { throw new Error(e.error || r.status); }); }
      return r.json();
    }).then(function (plan) {
      lastPlan = plan;
      if (plan.currency) { currency = plan.currency.symbol; }
      $('value').textContent = money(plan.value);
      draw(plan);
    }).catch(function (e) {
      $('chart-note').textContent = String(e.message || e);
      draw(null);
    });
  }

  function draw(plan) {
    var canvas = $('chart');
    var ctx = canvas.getContext('2d');
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth || 800, h = canvas.clientHeight || 320;
    canvas.width = Math.round(w * ratio);
    canvas.height = Math.round(h * ratio);
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (!plan || !plan.slots.length) {
      canvas.dataset.rendered = '0';
      ctx.fillStyle = '#667';
      ctx.fillText('No plan yet', 20, 30);
      return;
    }
    var slots = plan.slots;
    var left = 48, right = 40, top = 10, bottom = 28;
    var pw = w - left - right, ph = h - top - bottom;
    var lo = Math.min(0, Math.min.apply(null, slots.map(function (s) { return s.buy; })));
    var hi = Math.max.apply(null, slots.map(function (s) { return s.buy; }));
    if (hi - lo < 1e-9) { hi = lo + 1; }
    var y = function (p) { return top + ph - (p - lo) / (hi - lo) * ph; };
    var bw = pw / slots.length;
    // Mode band along the bottom, price bars above it.
    slots.forEach(function (s, i) {
      ctx.fillStyle = COLORS[s.mode];
      ctx.fillRect(left + i * bw, top + ph - 6, Math.max(bw - 0.5, 0.5), 6);
      ctx.globalAlpha = 0.35;
      ctx.fillRect(left + i * bw, Math.min(y(s.buy), y(0)), Math.max(bw - 0.5, 0.5), Math.abs(y(s.buy) - y(0)));
      ctx.globalAlpha = 1;
    });
    // A step line over the slots: one flat segment per slot.
    var steps = function (colour, width, at) {
      ctx.strokeStyle = colour;
      ctx.lineWidth = width;
      ctx.beginPath();
      slots.forEach(function (s, i) {
        ctx.lineTo(left + i * bw, at(s));
        ctx.lineTo(left + (i + 1) * bw, at(s));
      });
      ctx.stroke();
    };
    steps('#2a5db0', 1.5, function (s) { return y(s.buy); });
    // PV (area) and house load (line) on their own kWh scale, in the lower half.
    var emax = Math.max(0.05, Math.max.apply(null, slots.map(function (s) { return Math.max(s.pv_kwh, s.load_kwh); })));
    var ey = function (e) { return top + ph - e / emax * ph * 0.5; };
    ctx.fillStyle = 'rgba(242, 194, 48, 0.55)';
    slots.forEach(function (s, i) {
      if (s.pv_kwh > 0) { ctx.fillRect(left + i * bw, ey(s.pv_kwh), Math.max(bw - 0.5, 0.5), ey(0) - ey(s.pv_kwh)); }
    });
    steps('#5b4636', 1.2, function (s) { return ey(s.load_kwh); });
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = '#8e44ad';
    ctx.beginPath();
    ctx.moveTo(left, top + ph - slots[0].soc_start / 100 * ph);
    slots.forEach(function (s, i) { ctx.lineTo(left + (i + 1) * bw, top + ph - s.soc_end / 100 * ph); });
    ctx.stroke();
    // Axes: price on the left, SOC on the right, hours along the bottom.
    ctx.fillStyle = '#445';
    ctx.font = '11px system-ui, sans-serif';
    ctx.textAlign = 'right';
    for (var k = 0; k <= 4; k++) {
      var p = lo + (hi - lo) * k / 4;
      ctx.fillText(p.toFixed(3), left - 4, y(p) + 4);
    }
    ctx.textAlign = 'left';
    if (currency) { ctx.fillText(currency + '/kWh', 2, top + 8); }
    ctx.fillText('100 %', w - right + 4, top + 8);
    ctx.fillText('0 %', w - right + 4, top + ph);
    ctx.textAlign = 'center';
    var every = Math.max(1, Math.round(slots.length / 12));
    slots.forEach(function (s, i) {
      if (i % every === 0) { ctx.fillText(clock(s.start), left + i * bw, h - 8); }
    });
    canvas.dataset.rendered = String(slots.length);
    canvas.dataset.charge = String(slots.filter(function (s) { return s.mode === 'ForceCharge'; }).length);
    canvas.dataset.pv = String(slots.filter(function (s) { return s.pv_kwh > 0; }).length);
    $('chart-note').textContent = 'Plan from ' + clock(slots[0].start) + ', ' + slots.length +
      ' slots of 15 minutes. PV: ' + plan.pv_source + '; load: ' + plan.load_source + '; ' +
      plan.switches + ' mode changes.';
  }

  window.addEventListener('resize', function () { draw(lastPlan); });
  fetch('api/status').then(function (r) { return r.json(); }).then(function (s) {
    showStatus(s);
    if (window.EventSource) {
      var es = new EventSource('stream');
      es.addEventListener('status', function (e) { showStatus(JSON.parse(e.data)); });
    }
  }).catch(function (e) { $('chart-note').textContent = 'status unavailable: ' + e; });
})();
