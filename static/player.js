// The listener page: everything live from /events (no polling).
'use strict';
const $ = id => document.getElementById(id);
const text = (id, t) => { $(id).textContent = t; };
const name = t => t ? (t.artist ? t.artist + ' – ' : '') + t.title : 'silence';
const clock = s => { s = Math.max(0, Math.floor(s)); return Math.floor(s / 60) + ':' + String(s % 60).padStart(2, '0'); };

// The station clock: media time `media_time_s` was on air at `unix_ms`.
let station = null;
const mediaNow = () => station ? station.media_time_s + (Date.now() - station.unix_ms) / 1000 : null;
let now = null, coming = null;
const history = [];
// For tests and curious listeners: when the title changed, and to what.
window.nonstop = { titleChanges: [], clocks: [] };

function showNow(n) {
  now = n;
  const t = n.track;
  text('now', n.note ? n.note : name(t));
  text('album', t && t.album ? t.album : '');
  const art = $('art');
  art.hidden = true;
  if (t) { art.onload = () => { art.hidden = false; }; art.onerror = () => { art.hidden = true; }; art.src = '/api/artwork/' + t.id; }
  document.title = (t ? name(t) + ' · ' : '') + document.querySelector('h1').textContent;
  window.nonstop.titleChanges.push({ at_ms: Date.now(), started_at_s: n.started_at_s, title: $('now').textContent });
  if (t) {
    history.unshift(name(t));
    history.length = Math.min(history.length, 10);
    $('history').replaceChildren(...history.slice(1).map(h => Object.assign(document.createElement('li'), { textContent: h })));
  }
}

function tick() {
  const m = mediaNow();
  if (now && now.track && m !== null) {
    const into = m - now.started_at_s, d = now.track.duration_s || 0;
    text('elapsed', clock(into) + (d ? ' / ' + clock(d) : ''));
    $('progress').value = d ? Math.min(1, into / d) : 0;
  }
  if (coming && m !== null) {
    const ahead = coming.at_s - m;
    const how = coming.mode === 'beatmatched'
      ? `beatmatched over ${coming.overlap_bars} bars (${coming.tempo_a.toFixed(1)} → ${coming.tempo_b.toFixed(1)} BPM)`
      : 'crossfade' + (coming.reason ? ` (${coming.reason})` : '');
    text('coming', ahead > 0 ? `Into ${coming.to} in ${clock(ahead)}: ${how}` : '');
  }
}
setInterval(tick, 250);

const events = new EventSource('/events');
events.addEventListener('now_playing', e => showNow(JSON.parse(e.data)));
events.addEventListener('tick', e => {
  station = JSON.parse(e.data);
  window.nonstop.clocks.push(station);
  if (window.nonstop.clocks.length > 600) window.nonstop.clocks.shift();
  text('listeners', station.listeners + (station.listeners === 1 ? ' listener' : ' listeners'));
});
events.addEventListener('upcoming', e => {
  const u = JSON.parse(e.data).tracks;
  $('upcoming').replaceChildren(...u.map(t => Object.assign(document.createElement('li'), {
    textContent: name(t) + (t.by === 'request' ? ' (requested)' : '') })));
});
events.addEventListener('transition', e => {
  const t = JSON.parse(e.data);
  coming = t;
  const how = t.mode === 'beatmatched' ? 'beatmatched' : 'crossfaded' + (t.reason ? ' (' + t.reason + ')' : '');
  text('last', 'Last transition: ' + t.from + ' → ' + t.to + ', ' + how +
    (t.alignment ? ', beats ' + Math.abs(t.alignment.lag_ms).toFixed(1) + ' ms apart' : ''));
});
events.addEventListener('requests', e => {
  const r = JSON.parse(e.data).requests;
  $('requests').replaceChildren(...r.map(q => Object.assign(document.createElement('li'), {
    textContent: name(q) + (q.position === null ? ' (waiting for the rules)' : ` (in ${q.position + 1} tracks)`) })));
});

// Play/stop: a fresh connection each time, so play always starts live.
// In sync mode the page asks for the stream from a frame it chooses, so it
// knows the media time of every sample it plays, and holds its position at
// SYNC_DELAY_S behind the station clock by nudging the playback rate.
const SYNC_DELAY_S = 3.0;
let sync = null; // { start_s } while playing in sync
const audio = $('audio');
const syncPosition = () => sync && sync.start_s + audio.currentTime;
const syncTarget = () => mediaNow() === null ? null : mediaNow() - SYNC_DELAY_S;
window.nonstop.sync = () => sync && { at_ms: Date.now(), position_s: syncPosition(), target_s: syncTarget(),
  rate: audio.playbackRate, started: sync.started };
let playing = false;
$('play').addEventListener('click', () => {
  playing = !playing;
  if (!playing) { audio.pause(); audio.removeAttribute('src'); audio.load(); sync = null; }
  else if ($('sync').checked && station) {
    // Start a little ahead of the target; pause off the difference once
    // playback has begun (whatever the start-up took), then nudge.
    const k = Math.ceil((mediaNow() - SYNC_DELAY_S + 1.5 + station.lame_delay_s) / station.frame_s);
    sync = { start_s: k * station.frame_s - station.lame_delay_s, started: false };
    audio.src = '/stream.mp3?at=' + k;
    audio.play();
  } else { audio.src = '/stream.mp3?t=' + Date.now(); audio.play(); }
  $('play').textContent = playing ? 'Stop' : 'Play';
  $('play').setAttribute('aria-pressed', String(playing));
});
audio.addEventListener('playing', () => {
  if (!sync || sync.started) return;
  sync.started = true;
  const ahead = syncPosition() - syncTarget();
  if (ahead > 0.02) { audio.pause(); setTimeout(() => audio.play(), ahead * 1000); }
});
setInterval(() => {
  if (!sync || !sync.started || audio.paused) return;
  const err = syncPosition() - syncTarget();
  // Ahead: slower; behind: faster; at most 5 %, nothing inside 5 ms.
  audio.playbackRate = Math.abs(err) < 0.005 ? 1 : 1 - Math.max(-0.05, Math.min(0.05, err * 0.5));
  text('sync-note', `${(err * 1000).toFixed(0)} ms off the station clock`);
}, 250);

// Requests, when the station takes them.
fetch('/status').then(r => r.json()).then(s => {
  for (const t of (s.mixer.recent_transitions || []).slice().reverse()) { history.push(t.to); }
  $('requests-card').hidden = !s.station.requests_open;
}).catch(() => {});
$('search').addEventListener('submit', async e => {
  e.preventDefault();
  const r = await fetch('/api/tracks?q=' + encodeURIComponent($('q').value));
  if (!r.ok) { text('request-note', await r.text()); return; }
  const found = (await r.json()).tracks;
  $('results').replaceChildren(...found.map(t => {
    const li = document.createElement('li');
    const b = Object.assign(document.createElement('button'), { type: 'button', textContent: 'Request' });
    b.addEventListener('click', async () => {
      const res = await fetch('/api/requests', { method: 'POST', headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ track_id: t.id }) });
      text('request-note', res.ok ? 'Requested: ' + name(t) : await res.text());
    });
    li.append(name(t) + ' ', b);
    return li;
  }));
  if (!found.length) text('request-note', 'Nothing found.');
});
