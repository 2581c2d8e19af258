// The admin dashboard: admin data from /admin/* with the token (kept for
// this tab only), live figures from /events.
'use strict';
const $ = id => document.getElementById(id);
const text = (id, t) => { $(id).textContent = t; };
const name = t => t ? (t.artist ? t.artist + ' – ' : '') + t.title : 'silence';
const cell = (v, cls) => Object.assign(document.createElement('td'), { textContent: v ?? '', className: cls || '' });
const row = cells => { const tr = document.createElement('tr'); tr.append(...cells); return tr; };
const dur = s => s >= 3600 ? (s / 3600).toFixed(1) + ' h' : s >= 60 ? Math.floor(s / 60) + ' min' : Math.round(s) + ' s';
let token = sessionStorage.getItem('nonstop-token') || '';

async function admin(path, method = 'GET', body) {
  const r = await fetch(path, { method, headers: Object.assign({ Authorization: 'Bearer ' + token },
    body ? { 'Content-Type': 'application/json' } : {}), body: body ? JSON.stringify(body) : undefined });
  if (r.status === 401 || r.status === 403) { showLogin(await r.text()); throw new Error('unauthorised'); }
  const type = r.headers.get('content-type') || '';
  const data = type.includes('json') ? await r.json() : await r.text();
  if (!r.ok) throw new Error(typeof data === 'string' ? data : data.error || JSON.stringify(data));
  return data;
}

function showLogin(note) {
  $('console').hidden = true; $('login').hidden = false; text('login-note', note || '');
}
$('login').addEventListener('submit', e => {
  e.preventDefault(); token = $('token').value.trim(); sessionStorage.setItem('nonstop-token', token); start();
});

// Plots: samples {t, listeners, pcm_queue_s, frame_queue_s}, last 6 h.
let samples = [];
const KEEP_S = 6 * 3600;
function plot(id, series, max) {
  const c = $(id), g = c.getContext('2d'), w = c.width, h = c.height;
  g.clearRect(0, 0, w, h);
  if (samples.length < 2) return;
  const t0 = samples[0].t, t1 = samples[samples.length - 1].t, span = Math.max(1, t1 - t0);
  const top = Math.max(max, ...samples.flatMap(s => series.map(([k]) => s[k]))) * 1.1 || 1;
  g.font = '12px system-ui'; g.fillStyle = '#888'; g.fillText(top.toFixed(top < 10 ? 1 : 0), 4, 12);
  for (const [k, color] of series) {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    samples.forEach((s, i) => { const x = (s.t - t0) / span * w, y = h - s[k] / top * (h - 4) - 2; i ? g.lineTo(x, y) : g.moveTo(x, y); });
    g.stroke();
  }
  text('span', dur(span));
}
function redraw() {
  plot('plot-listeners', [['listeners', '#15803d']], 1);
  plot('plot-queues', [['pcm_queue_s', '#c2410c'], ['frame_queue_s', '#2563eb']], 1);
}

function render(s) {
  const np = s.now_playing;
  text('now', s.broadcast.note || (np ? name(np) : 'silence'));
  text('figures', `${s.listeners.count} listening (max ${s.listeners.max}, ${s.listeners.total} so far, ${s.listeners.dropped_slow} dropped as too slow) · ` +
    `underruns ${s.broadcast.underruns} · drift ${s.broadcast.drift_ms.toFixed(1)} ms · up ${dur(s.station.uptime_s)}`);
  const o = s.ordering;
  text('plugin', `${o.plugin} (version ${o.version || 'none'}), ${o.reloads} reloads, ${o.errors} errors, ${o.fallbacks} fallback picks` +
    (o.error ? ` — last error (${o.error.during}${o.error.line ? ', line ' + o.error.line : ''}): ${o.error.message}` : ''));
  $('upcoming').replaceChildren(...o.upcoming.map(t => Object.assign(document.createElement('li'),
    { textContent: `${name(t)} · ${t.bpm.toFixed(1)} BPM · ${t.camelot} · by ${t.by}` })));
  $('requests').replaceChildren(...o.requests.map((q, i) => {
    const li = document.createElement('li');
    const up = Object.assign(document.createElement('button'), { type: 'button', textContent: '↑', title: 'earlier' });
    up.setAttribute('aria-label', 'play ' + q.title + ' earlier');
    up.disabled = i === 0;
    up.onclick = () => { const ids = o.requests.map(r => r.id); [ids[i - 1], ids[i]] = [ids[i], ids[i - 1]];
      act(() => admin('/admin/requests/order', 'POST', { ids }), 'reordered'); };
    const drop = Object.assign(document.createElement('button'), { type: 'button', textContent: 'drop' });
    drop.setAttribute('aria-label', 'drop the request for ' + q.title);
    drop.onclick = () => act(() => admin('/admin/requests/' + q.id, 'DELETE'), 'dropped');
    li.append(`${name(q)} · from ${q.from} · ${q.position === null ? 'waiting for the rules' : 'in ' + (q.position + 1) + ' tracks'} `, up, ' ', drop);
    return li;
  }));
  $('transitions').replaceChildren(...s.mixer.recent_transitions.map(t => row([
    cell(t.at_s.toFixed(1) + ' s', 'num'), cell(t.from + ' → ' + t.to),
    cell(t.mode + (t.reason ? ' (' + t.reason + ')' : '')), cell(t.overlap_bars, 'num'), cell(t.stretch_ratio.toFixed(4), 'num'),
    cell(t.alignment ? (t.alignment.lag_ms >= 0 ? '+' : '') + t.alignment.lag_ms.toFixed(1) + ' ms' : '–', 'num'),
    cell(t.alignment ? Math.round(t.alignment.on_beat * 100) + '%' : '–', 'num')])));
  $('components').replaceChildren(...Object.entries(s.components).map(([k, c]) => row([
    cell(k), cell(c.alive ? 'alive' : 'down', c.alive ? 'ok' : 'bad'), cell(c.restarts, 'num'),
    cell(c.last_error ? c.last_error.at + ': ' + c.last_error.message : '')])));
  const l = s.library;
  text('library', `${l.playable} playable of ${l.tracks} files · ${l.pending} waiting for analysis · ${l.failed} failed · ${l.too_short} too short`);
  $('failed').replaceChildren(...l.failed_files.map(f => row([cell(f.path), cell(f.error)])));
  $('listeners').replaceChildren(...s.connections.map(c => row([cell(c.address), cell(c.user_agent),
    cell(dur(c.connected_s), 'num'), cell(c.bytes.toLocaleString(), 'num'), cell(c.lag_s.toFixed(2) + ' s', 'num')])));
}

async function act(f, done) {
  try { const r = await f(); text('action-note', done); await refresh(); return r; }
  catch (e) { text('action-note', e.message); }
}
$('skip').onclick = () => act(() => admin('/admin/skip', 'POST'), 'skip requested: mixing out on the next downbeat');
$('rescan').onclick = () => act(() => admin('/admin/rescan', 'POST'), 'rescan requested');
$('switch').onclick = async () => {
  text('plugin-note', 'checking…');
  try { const r = await admin('/admin/plugin', 'POST', { name: $('plugins').value }); text('plugin-note', `${r.active} is active`); refresh(); }
  catch (e) { text('plugin-note', e.message); }
};
$('req-search').addEventListener('submit', async e => {
  e.preventDefault();
  const r = await (await fetch('/api/tracks?q=' + encodeURIComponent($('q').value))).json();
  $('results').replaceChildren(...r.tracks.map(t => {
    const li = document.createElement('li');
    const b = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Request' });
    b.onclick = () => act(() => admin('/admin/requests', 'POST', { track_id: t.id }), 'requested ' + name(t));
    li.append(name(t) + ' ', b); return li;
  }));
});

async function refresh() { render(await admin('/admin/status')); }

let events = null;
async function start() {
  try {
    const [status, history, plugins] = await Promise.all([admin('/admin/status'), admin('/admin/history'), admin('/admin/plugin')]);
    $('login').hidden = true; $('console').hidden = false;
    samples = history.samples;
    $('plugins').replaceChildren(...plugins.available.map(p => Object.assign(document.createElement('option'),
      { value: p, textContent: p, selected: p === plugins.active })));
    render(status); redraw();
  } catch (e) { if (e.message !== 'unauthorised') showLogin(e.message); return; }
  if (events) return;
  events = new EventSource('/events');
  events.addEventListener('tick', e => {
    const s = JSON.parse(e.data);
    samples.push({ t: s.unix_ms / 1000, listeners: s.listeners, pcm_queue_s: s.pcm_queue_s, frame_queue_s: s.frame_queue_s });
    while (samples.length && samples[samples.length - 1].t - samples[0].t > KEEP_S) samples.shift();
    window.nonstop.ticks++;
    window.nonstop.clock = s;
    redraw();
  });
  for (const kind of ['now_playing', 'transition', 'upcoming', 'requests', 'plugin']) {
    events.addEventListener(kind, () => { window.nonstop.events.push(kind); refresh().catch(() => {}); });
  }
  setInterval(() => refresh().catch(() => {}), 5000);
}
window.nonstop = { ticks: 0, events: [], samples: () => samples.length };
if (token) start(); else showLogin();
