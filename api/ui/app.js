// scuttle console: one status stream (/v1/status/watch, Server-Sent
// Events) drives the members, the graph and the documents; the document
// picked is watched by its own stream. No polling, no external requests.
'use strict';
(function () {
  const $ = (sel) => document.querySelector(sel);
  const token = () => localStorage.getItem('scuttle-token') || '';
  const withToken = (url) => token() ? url + (url.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token()) : url;
  const enc = encodeURIComponent;

  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v; else if (k.startsWith('on')) e.addEventListener(k.slice(2), v); else e.setAttribute(k, v);
    }
    for (const k of kids) e.append(k instanceof Node ? k : String(k));
    return e;
  }
  function svg(tag, attrs) {
    const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }
  const fmtBytes = (n) => n < 1024 ? n + ' B' : n < 1 << 20 ? (n / 1024).toFixed(1) + ' KiB' : (n / (1 << 20)).toFixed(1) + ' MiB';
  const fmtAge = (ms) => ms < 1000 ? Math.round(ms) + ' ms' : ms < 60e3 ? (ms / 1000).toFixed(1) + ' s' : ms < 3600e3 ? Math.round(ms / 60e3) + ' min' : Math.round(ms / 3600e3) + ' h';
  const fmtTime = (ts) => new Date(ts).toLocaleTimeString();
  const replicaID = (src) => String(src).split('~')[0];

  async function api(method, path, body) {
    const h = { 'Content-Type': 'application/json' };
    if (token()) h.Authorization = 'Bearer ' + token();
    const r = await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status === 401) { showAuth(); throw new Error('401'); }
    const j = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(j.error || r.statusText);
    return j;
  }

  // The page for a node that wants a token.
  function showAuth() {
    $('#main').hidden = true;
    $('#auth').hidden = false;
    $('#conn').textContent = 'token required';
    $('#conn').className = 'pill bad';
  }
  $('#auth-form').addEventListener('submit', (e) => {
    e.preventDefault();
    localStorage.setItem('scuttle-token', $('#auth-token').value);
    location.reload();
  });

  // ---- status ----
  let prev = null; // the previous status event, for rates
  const rates = {};

  function docCounters(st) {
    const out = {};
    for (const l of st.links || []) {
      for (const [name, s] of Object.entries(l.documents || {})) {
        const o = out[name] || (out[name] = { in: 0, out: 0, uin: 0, uout: 0 });
        o.in += s.BytesIn; o.out += s.BytesOut; o.uin += s.UpdatesIn; o.uout += s.UpdatesOut;
      }
    }
    return out;
  }

  function renderMembers(st) {
    const linked = new Set((st.links || []).map((l) => l.peer));
    const tb = $('#members tbody');
    tb.replaceChildren(...(st.members || []).map((m) => el('tr', { 'data-member': m.id, 'data-state': m.state },
      el('td', {}, m.id + (m.id === st.id ? ' (this node)' : '')),
      el('td', { class: 'state-' + m.state }, m.state),
      el('td', {}, m.addr),
      el('td', {}, m.id === st.id ? '—' : linked.has(m.id) ? 'linked' : 'no link'),
      el('td', {}, fmtTime(m.since)))));
    // The graph: members on a circle, this node's links as edges.
    const g = $('#graph');
    const ms = st.members || [];
    const cx = 160, cy = 120, r = ms.length > 1 ? 85 : 0;
    const pos = {};
    ms.forEach((m, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(ms.length, 1);
      pos[m.id] = [cx + r * Math.cos(a), cy + r * Math.sin(a)];
    });
    const kids = [];
    for (const l of st.links || []) {
      if (!pos[l.peer] || !pos[st.id]) continue;
      const [x1, y1] = pos[st.id], [x2, y2] = pos[l.peer];
      const e = svg('line', { class: 'edge', x1, y1, x2, y2, 'data-link': l.peer });
      e.append(svg('title'));
      e.firstChild.textContent = `${st.id} ↔ ${l.peer}: ${fmtBytes(l.bytes_in)} in, ${fmtBytes(l.bytes_out)} out`;
      kids.push(e);
    }
    for (const m of ms) {
      const [x, y] = pos[m.id];
      const c = svg('circle', { class: `node ${m.state}${m.id === st.id ? ' self' : ''}`, cx: x, cy: y, r: 14, 'data-member': m.id });
      c.append(svg('title'));
      c.firstChild.textContent = `${m.id}: ${m.state}, ${m.addr}`;
      const t = svg('text', { x, y: y + 30 });
      t.textContent = m.id;
      kids.push(c, t);
    }
    g.replaceChildren(...kids);
  }

  function renderDocs(st) {
    const now = Date.parse(st.now);
    const cur = docCounters(st);
    if (prev) {
      const dt = (now - Date.parse(prev.now)) / 1000;
      const old = docCounters(prev);
      for (const [name, c] of Object.entries(cur)) {
        const o = old[name];
        if (o && dt > 0) rates[name] = Math.max(0, (c.uin - o.uin + c.uout - o.uout) / dt);
      }
    }
    const tb = $('#docs tbody');
    tb.replaceChildren(...(st.documents || []).map((d) => {
      const ds = (st.doc_stats || {})[d.name] || {};
      const c = cur[d.name] || { in: 0, out: 0 };
      const clock = Object.entries(d.clock || {});
      const tr = el('tr', { class: 'pick' + (selected && selected.name === d.name ? ' sel' : ''), 'data-doc': d.name, onclick: () => select(d.type, d.name) },
        el('td', {}, d.name), el('td', {}, d.type),
        el('td', {}, ds.count >= 0 ? ds.count : '—'),
        el('td', { title: clock.map(([s, t]) => s + ': ' + t).join('\n') }, clock.length + ' source' + (clock.length === 1 ? '' : 's')),
        el('td', {}, (rates[d.name] || 0).toFixed(1)),
        el('td', {}, fmtBytes(c.in) + ' / ' + fmtBytes(c.out)),
        el('td', { title: 'last remote update: arrival less write time; max of the last minute' }, ds.lag_ms ? fmtAge(ds.lag_ms) + ' (max ' + fmtAge(ds.lag_max_ms) + ')' : '—'),
        el('td', {}, ds.last_write ? fmtAge(Math.max(0, now - Date.parse(ds.last_write))) + ' ago' : '—'));
      return tr;
    }));
  }

  function onStatus(st) {
    $('#node-id').textContent = st.id;
    document.title = 'scuttle ' + st.id;
    renderMembers(st);
    renderDocs(st);
    prev = st;
    $('#updated').textContent = 'last event ' + new Date().toLocaleTimeString();
    if (selected && selected.type === 'lock') renderLocks();
  }

  function connectStatus() {
    const es = new EventSource(withToken('/v1/status/watch'));
    es.addEventListener('status', (e) => {
      $('#conn').textContent = 'live';
      $('#conn').className = 'pill ok';
      onStatus(JSON.parse(e.data));
    });
    es.onerror = () => {
      $('#conn').textContent = 'reconnecting';
      $('#conn').className = 'pill bad';
    };
  }

  // ---- the live view of one document ----
  let selected = null; // {type, name, close}

  function select(type, name) {
    if (selected) selected.close();
    location.hash = type + '/' + name;
    selected = { type, name, close: () => {} };
    for (const tr of document.querySelectorAll('#docs tbody tr')) tr.classList.toggle('sel', tr.dataset.doc === name);
    $('#view-section').hidden = false;
    $('#view-title').textContent = type + ' ' + name;
    ({ model: viewModel, emitter: viewEmitter, lock: viewLocks, doc: viewDoc }[type] || (() => {}))(name);
  }

  // watch opens a Server-Sent Events stream; its promise opened resolves
  // once the server has subscribed (it flushes a comment at once), so that
  // a snapshot read after it misses nothing the stream does not bring.
  function watch(path, kind, fn) {
    const es = new EventSource(withToken(path));
    es.addEventListener(kind, (e) => fn(JSON.parse(e.data)));
    es.opened = new Promise((resolve) => es.addEventListener('open', resolve, { once: true }));
    selected.close = () => es.close();
    return es;
  }

  function viewModel(name) {
    const rows = new Map(); // key -> {value, source, time, tr}
    const tbody = el('tbody');
    const form = el('form', { class: 'row', id: 'set-form' },
      el('input', { name: 'key', placeholder: 'key', required: '', id: 'set-key' }),
      el('input', { name: 'value', placeholder: 'value (JSON, or text)', id: 'set-value' }),
      el('button', { type: 'submit', id: 'set-btn' }, 'set'),
      el('button', { type: 'button', class: 'secondary', id: 'del-btn', onclick: () => del() }, 'delete'));
    const msg = el('p', { class: 'hint', id: 'form-msg' });
    $('#view').replaceChildren(form, msg, el('div', { class: 'scroll' },
      el('table', { id: 'model' }, el('thead', {}, el('tr', {}, el('th', {}, 'key'), el('th', {}, 'value'), el('th', {}, 'last write by'), el('th', {}, 'at'))), tbody)));
    function put(key, value, source, ts, flash) {
      let r = rows.get(key);
      if (!r) {
        r = { tr: el('tr', { 'data-key': key }) };
        rows.set(key, r);
        const keys = [...rows.keys()].sort();
        const next = rows.get(keys[keys.indexOf(key) + 1]);
        tbody.insertBefore(r.tr, next ? next.tr : null);
      }
      r.tr.replaceChildren(el('td', {}, key), el('td', { class: 'val' }, JSON.stringify(value)),
        el('td', { title: source || '' }, source ? replicaID(source) : '—'), el('td', {}, ts ? fmtTime(ts) : '—'));
      if (flash) { r.tr.classList.remove('flash'); void r.tr.offsetWidth; r.tr.classList.add('flash'); }
    }
    const seen = new Set();
    const es = watch(`/v1/models/${enc(name)}/watch`, 'change', (c) => {
      seen.add(c.key);
      if (c.deleted) { const r = rows.get(c.key); if (r) { r.tr.remove(); rows.delete(c.key); } return; }
      put(c.key, c.value, c.source, c.timestamp, true);
    });
    // The snapshot is read once the watch is on: a write after it comes
    // through the watch, one before it is in the snapshot, and a key the
    // watch has brought already is newer than the snapshot's.
    es.opened.then(() => api('GET', `/v1/models/${enc(name)}?writes=1`)).then((snap) => {
      for (const [k, w] of Object.entries(snap)) if (!seen.has(k)) put(k, w.value, w.source, w.timestamp);
    }).catch((e) => { msg.textContent = e.message; });
    const parse = (s) => { try { return JSON.parse(s); } catch { return s; } };
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const key = form.key.value;
      try {
        await api('PUT', `/v1/models/${enc(name)}/keys/${enc(key)}`, parse(form.value.value));
        msg.textContent = `set ${key}`;
      } catch (err) { msg.textContent = err.message; }
    });
    async function del() {
      const key = form.key.value;
      try {
        await api('DELETE', `/v1/models/${enc(name)}/keys/${enc(key)}`);
        msg.textContent = `deleted ${key}`;
      } catch (err) { msg.textContent = err.message; }
    }
  }

  function viewEmitter(name) {
    const tbody = el('tbody');
    $('#view').replaceChildren(el('p', { class: 'hint' }, 'The last 50 events, newest first.'), el('div', { class: 'scroll' },
      el('table', { id: 'events' }, el('thead', {}, el('tr', {}, el('th', {}, 'event'), el('th', {}, 'args'), el('th', {}, 'source'), el('th', {}, 'at'))), tbody)));
    const add = (ev, flash) => {
      const tr = el('tr', { class: flash ? 'flash' : '' }, el('td', {}, ev.event), el('td', { class: 'val' }, JSON.stringify(ev.args)),
        el('td', {}, replicaID(ev.source)), el('td', {}, fmtTime(ev.timestamp)));
      tbody.prepend(tr);
      while (tbody.children.length > 50) tbody.lastChild.remove();
    };
    // The tail is read once the watch is on, so that no event falls between
    // the two; live events wait until the tail is shown, and one in both
    // is shown once (an event is its source and timestamp).
    const shown = new Set();
    let early = [];
    const show = (ev, flash) => {
      const id = ev.source + '@' + ev.timestamp;
      if (!shown.has(id)) { shown.add(id); add(ev, flash); }
    };
    const es = watch(`/v1/events/${enc(name)}/watch`, 'event', (ev) => (early ? early.push(ev) : show(ev, true)));
    es.opened.then(() => api('GET', `/v1/events/${enc(name)}?limit=50`)).then((evs) => {
      for (const ev of evs) show(ev, false);
    }).catch(() => {}).finally(() => {
      const live = early;
      early = null;
      for (const ev of live) show(ev, true);
    });
  }

  let lockNames = [];
  function viewLocks(name) {
    const list = el('tbody');
    const form = el('form', { class: 'row' }, el('input', { name: 'lock', placeholder: 'lock name', required: '' }), el('button', { type: 'submit' }, 'watch a free lock too'));
    lockNames = JSON.parse(localStorage.getItem('scuttle-locks-' + name) || '[]');
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (!lockNames.includes(form.lock.value)) lockNames.push(form.lock.value);
      localStorage.setItem('scuttle-locks-' + name, JSON.stringify(lockNames));
      renderLocks();
    });
    $('#view').replaceChildren(el('p', { class: 'hint', id: 'lock-members' }), form, el('div', { class: 'scroll' },
      el('table', { id: 'locks' }, el('thead', {}, el('tr', {}, el('th', {}, 'lock'), el('th', {}, 'holders'), el('th', {}, 'this node\'s lease ends'))), list)));
    selected.list = list;
    renderLocks();
  }
  // renderLocks reads the holders of the locks asked for: on each status
  // event (at most once a second), not on a timer of its own.
  async function renderLocks() {
    const { name, list } = selected;
    try {
      const t = await api('GET', `/v1/locks/${enc(name)}`);
      $('#lock-members').textContent = 'members: ' + t.members.join(', ');
      const held = new Set(t.held.map((b) => b.lock));
      const asked = await Promise.all(lockNames.filter((l) => !held.has(l)).map((l) => api('GET', `/v1/locks/${enc(name)}/${enc(l)}`)));
      const rows = [...t.held, ...asked].sort((a, b) => a.lock < b.lock ? -1 : 1);
      list.replaceChildren(...rows.map((b) => el('tr', {}, el('td', {}, b.lock), el('td', {}, b.holders.join(', ') || 'free'), el('td', {}, b.deadline ? fmtTime(b.deadline) : '—'))));
    } catch { /* shown by the next status event */ }
  }

  function viewDoc(name) {
    const pre = el('pre', { id: 'doc-json' });
    const log = el('tbody');
    $('#view').replaceChildren(pre, el('div', { class: 'scroll' }, el('table', {}, el('thead', {}, el('tr', {}, el('th', {}, 'path'), el('th', {}, 'value'), el('th', {}, 'source'))), log)));
    // Each change reloads the document; only the latest load is shown, so
    // that answers arriving out of order never show an older document.
    let loads = 0;
    const load = () => {
      const n = ++loads;
      return api('GET', `/v1/docs/${enc(name)}`).then((v) => { if (n === loads) pre.textContent = JSON.stringify(v, null, 2); }).catch(() => {});
    };
    const es = watch(`/v1/docs/${enc(name)}/watch`, 'change', (c) => {
      log.prepend(el('tr', { class: 'flash' }, el('td', {}, c.path), el('td', { class: 'val' }, JSON.stringify(c.value)), el('td', {}, replicaID(c.source || ''))));
      while (log.children.length > 20) log.lastChild.remove();
      load();
    });
    es.opened.then(load); // once the watch is on: no change falls between
  }

  // ---- start ----
  fetch(withToken('/v1/status'), { headers: token() ? { Authorization: 'Bearer ' + token() } : {} }).then((r) => {
    if (r.status === 401) { showAuth(); return; }
    connectStatus();
    const m = /^#(model|emitter|lock|doc)\/(.+)$/.exec(location.hash);
    if (m) select(m[1], decodeURIComponent(m[2]));
  }).catch(() => connectStatus());
  window.scuttleConsole = { select };
})();
