// The findings table of a Vigil hunt report: search, sort and pages over the JSON the
// page embeds. Everything from the data goes into the page as text (textContent): rule
// titles and event data are the attacker's.
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('vigil-data').textContent);
  var PAGE = 100;
  var rows = data.rows; // [time, rule, host, channel, event id, file, record, details]
  var rules = data.rules; // [title, id, level, tags]
  var base = function (p) { var i = p.lastIndexOf('/'); return i < 0 ? p : p.slice(i + 1); };
  var fmt = function (t) {
    return t === null ? '-' : new Date(t).toISOString().replace('T', ' ').replace('Z', '');
  };
  // What each column sorts by, and the text the search looks through.
  var keys = {
    time: function (r) { return r[0] === null ? -Infinity : r[0]; },
    level: function (r) { return rules[r[1]][2]; },
    rule: function (r) { return rules[r[1]][0]; },
    host: function (r) { return data.hosts[r[2]]; },
    channel: function (r) { return data.channels[r[3]]; },
    eid: function (r) { var n = Number(r[4]); return isNaN(n) ? r[4] : n; },
    file: function (r) { return base(data.files[r[5]]) + '#' + String(r[6]).padStart(20, '0'); },
    details: function (r) { return r[7]; }
  };
  var hay = rows.map(function (r) {
    var rule = rules[r[1]];
    return [fmt(r[0]), data.levels[rule[2]], rule[0], rule[1], rule[3], data.hosts[r[2]],
      data.channels[r[3]], r[4], data.files[r[5]] + '#' + r[6], r[7]].join('\u0001').toLowerCase();
  });
  var state = { query: '', key: 'time', dir: 1, page: 0 };
  var view = rows.map(function (_, i) { return i; });
  var tbody = document.querySelector('#table tbody');
  var search = document.getElementById('search');

  function cell(tr, text, cls) {
    var td = document.createElement('td');
    td.textContent = text;
    if (cls) { td.className = cls; }
    tr.appendChild(td);
  }

  function apply() {
    var q = state.query.toLowerCase();
    view = [];
    for (var i = 0; i < rows.length; i++) {
      if (q === '' || hay[i].indexOf(q) >= 0) { view.push(i); }
    }
    var key = keys[state.key], dir = state.dir;
    view.sort(function (a, b) {
      var x = key(rows[a]), y = key(rows[b]);
      return (x < y ? -1 : x > y ? 1 : a - b) * dir;
    });
    state.page = 0;
    render();
  }

  function render() {
    var pages = Math.max(1, Math.ceil(view.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    var frag = document.createDocumentFragment();
    var end = Math.min(view.length, (state.page + 1) * PAGE);
    for (var k = state.page * PAGE; k < end; k++) {
      var r = rows[view[k]], rule = rules[r[1]];
      var tr = document.createElement('tr');
      cell(tr, fmt(r[0]), 't');
      cell(tr, data.levels[rule[2]], 'lvl l' + rule[2]);
      cell(tr, rule[0]);
      cell(tr, data.hosts[r[2]]);
      cell(tr, data.channels[r[3]]);
      cell(tr, r[4]);
      cell(tr, base(data.files[r[5]]) + '#' + r[6]);
      tr.lastChild.title = data.files[r[5]];
      cell(tr, r[7], 'details');
      frag.appendChild(tr);
    }
    tbody.replaceChildren(frag);
    document.getElementById('count').textContent = view.length === rows.length
      ? rows.length + ' findings'
      : view.length + ' of ' + rows.length + ' findings match';
    document.getElementById('page').textContent = 'page ' + (state.page + 1) + ' of ' + pages;
    document.getElementById('prev').disabled = state.page === 0;
    document.getElementById('next').disabled = state.page + 1 >= pages;
    document.querySelectorAll('#table th').forEach(function (th) {
      th.classList.toggle('asc', th.dataset.key === state.key && state.dir === 1);
      th.classList.toggle('desc', th.dataset.key === state.key && state.dir === -1);
    });
  }

  search.addEventListener('input', function () { state.query = search.value; apply(); });
  document.querySelectorAll('#table th').forEach(function (th) {
    th.addEventListener('click', function () {
      if (state.key === th.dataset.key) { state.dir = -state.dir; } else {
        state.key = th.dataset.key; state.dir = 1;
      }
      apply();
    });
  });
  document.getElementById('prev').addEventListener('click', function () { state.page--; render(); });
  document.getElementById('next').addEventListener('click', function () { state.page++; render(); });
  apply();
  // When the page was ready to read: what the report's open time is measured by.
  document.documentElement.dataset.renderedMs = performance.now().toFixed(1);
}());
