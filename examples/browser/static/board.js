// The board: a scuttlebutt Model whose keys are note ids and whose values
// are {text, by}; a deleted note is a key set to null, as in npm
// scuttlebutt. The model replicates over the node's WebSocket.
'use strict';
(function () {
  const $ = (s) => document.querySelector(s);
  const model = new window.scuttlebutt.Model();
  const me = 'tab-' + model.id.slice(0, 4).toLowerCase();
  const url = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/v1/models/board/replicate';
  let ws = null, online = true;

  function connect() {
    const w = new WebSocket(url);
    ws = w;
    let s = null;
    w.onopen = () => {
      $('#conn').textContent = 'connected'; $('#conn').className = 'pill ok';
      s = model.createStream();
      s.on('data', (line) => { if (w.readyState === WebSocket.OPEN) w.send(line); });
      s.on('error', () => w.close());
    };
    w.onmessage = (e) => { if (s) s.write(e.data); };
    w.onclose = () => {
      if (s) { try { s.destroy(); } catch { /* ended */ } }
      if (ws === w) ws = null;
      $('#conn').textContent = online ? 'reconnecting' : 'offline'; $('#conn').className = 'pill bad';
      if (online) setTimeout(() => { if (online && !ws) connect(); }, 1000);
    };
  }

  function render() {
    const rows = [];
    for (const id of Object.keys(model.store).sort()) {
      const note = model.get(id);
      if (!note) continue;
      const input = document.createElement('input');
      input.value = note.text;
      input.addEventListener('change', () => model.set(id, { text: input.value, by: me }));
      input.addEventListener('blur', () => requestAnimationFrame(render));
      const del = document.createElement('button');
      del.className = 'secondary';
      del.textContent = 'delete';
      del.addEventListener('click', () => model.set(id, null));
      const tr = document.createElement('tr');
      tr.dataset.note = id;
      const td = (kid) => { const c = document.createElement('td'); c.append(kid); return c; };
      tr.append(td(input), td(note.by), td(del));
      rows.push(tr);
    }
    // Keep the note being typed in.
    if (!document.activeElement || !$('#notes').contains(document.activeElement)) $('#notes tbody').replaceChildren(...rows);
  }
  model.on('update', () => requestAnimationFrame(render));

  $('#add').addEventListener('submit', (e) => {
    e.preventDefault();
    model.set(Date.now().toString(36) + '-' + me, { text: $('#text').value, by: me });
    $('#text').value = '';
  });
  $('#toggle').addEventListener('click', () => {
    online = !online;
    $('#toggle').textContent = online ? 'go offline' : 'go online';
    if (online && !ws) connect();
    if (!online && ws) ws.close();
  });
  connect();
  window.board = { model, me, connected: () => !!ws && ws.readyState === WebSocket.OPEN };
})();
