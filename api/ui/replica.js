// A browser replica of a model: npm scuttlebutt's Model, piped over a
// WebSocket to the node (/v1/models/NAME/replicate, JSON lines). It
// reconnects after a second when the socket drops, unless taken offline;
// edits made meanwhile go out when it is back.
'use strict';
(function () {
  const $ = (sel) => document.querySelector(sel);
  const params = new URLSearchParams(location.search);
  const name = params.get('model') || 'shared';
  const token = localStorage.getItem('scuttle-token') || '';
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host +
    '/v1/models/' + encodeURIComponent(name) + '/replicate' + (token ? '?token=' + encodeURIComponent(token) : '');

  const model = new window.scuttlebutt.Model();
  let ws = null, online = true, syncs = 0;

  function setConn(text, ok) {
    $('#conn').textContent = text;
    $('#conn').className = 'pill ' + (ok ? 'ok' : 'bad');
  }

  function connect() {
    const w = new WebSocket(url);
    ws = w;
    let s = null;
    w.onopen = () => {
      setConn('connected', true);
      s = model.createStream();
      s.on('data', (line) => { if (w.readyState === WebSocket.OPEN) w.send(line); });
      s.on('error', () => w.close());
      s.on('sync', () => { syncs++; $('#sync').textContent = 'in sync (' + syncs + ')'; });
    };
    w.onmessage = (e) => { if (s) s.write(e.data); };
    w.onclose = () => {
      if (s) { try { s.destroy(); } catch { /* already ended */ } }
      s = null;
      if (ws === w) ws = null;
      setConn(online ? 'reconnecting' : 'offline', false);
      $('#sync').textContent = '';
      if (online) setTimeout(() => { if (online && !ws) connect(); }, 1000);
    };
  }

  function render() {
    const rows = Object.keys(model.store).sort().filter((k) => model.store[k][0][1] !== null).map((k) => {
      const [[key, value], , source] = model.store[k];
      const tr = document.createElement('tr');
      tr.dataset.key = key;
      for (const t of [key, JSON.stringify(value), source === model.id ? 'this page' : String(source).split('~')[0]]) {
        const td = document.createElement('td');
        td.textContent = t;
        tr.append(td);
      }
      return tr;
    });
    $('#keys tbody').replaceChildren(...rows);
  }
  let queued = false;
  model.on('update', () => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; render(); }); } });

  const parse = (s) => { try { return JSON.parse(s); } catch { return s; } };
  $('#set-form').addEventListener('submit', (e) => {
    e.preventDefault();
    model.set($('#key').value, parse($('#value').value));
  });
  $('#del').addEventListener('click', () => model.set($('#key').value, null));
  function goOnline(on) {
    online = on;
    $('#toggle').textContent = on ? 'go offline' : 'go online';
    if (on && !ws) connect();
    if (!on && ws) ws.close();
  }
  $('#toggle').addEventListener('click', () => goOnline(!online));

  $('#model-name').textContent = name;
  $('#replica-id').textContent = model.id;
  document.title = 'replica of ' + name;
  connect();
  // For tests and the console: the model and the connection switch.
  window.replica = { model, goOnline, connected: () => !!ws && ws.readyState === WebSocket.OPEN, syncs: () => syncs };
})();
