'use strict';
// The bbedge page: live status over server-sent events, and the actions. No framework;
// the CSP allows only this file.
let csrf = '';
const $ = (id) => document.getElementById(id);

async function api(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (method !== 'GET') {
    opts.headers['X-CSRF-Token'] = csrf;
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body || {});
  }
  const r = await fetch(path, opts);
  if (r.status === 401) { location.href = '/'; throw new Error('signed out'); }
  let data = {};
  try { data = await r.json(); } catch (e) { /* no body */ }
  if (!r.ok) throw new Error((data.message || r.statusText) + (data.error ? ' [' + data.error + ']' : ''));
  return data;
}

function say(id, text, ok) {
  const el = $(id);
  el.textContent = text;
  el.className = 'result ' + (ok ? 'ok' : 'error');
}

// The LED dot plays the pattern the LED task plays: the steps come from the box
// (src/signal/pattern.rs), milliseconds on, off, on, off, …; none means solid.
const blink = { key: '', timer: null, i: 0 };
function playLed(led) {
  const dot = $('led');
  dot.dataset.colour = led.colour;
  dot.title = led.pattern;
  const key = [led.state, led.colour, led.steps.join(',')].join('|');
  if (key === blink.key) return;
  blink.key = key;
  clearTimeout(blink.timer);
  blink.i = 0;
  const steps = led.steps;
  const step = () => {
    if (steps.length === 0) { dot.classList.add('on'); return; }
    dot.classList.toggle('on', blink.i % 2 === 0);
    const ms = steps[blink.i];
    blink.i = (blink.i + 1) % steps.length;
    blink.timer = setTimeout(step, ms);
  };
  step();
}

function duration(s) {
  if (s == null) return '';
  const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
  return (d ? d + ' d ' : '') + (d || h ? h + ' h ' : '') + m + ' min ' + (s % 60) + ' s';
}

function render(s) {
  $('state').textContent = s.state;
  document.body.dataset.state = s.state;
  $('device-name').textContent = s.device.name;
  playLed(s.led);
  $('led-pattern').textContent = s.led.pattern + ', ' + s.led.colour + (s.led.testing ? ' (led test)' : '');
  const up = s.upstream;
  if (!up) {
    $('upstream').textContent = s.upstream_enabled ? 'starting' : 'disabled';
    $('upstream-error').textContent = '';
    $('outbox').textContent = '';
  } else {
    const since = up.state === 'online' ? up.connected_since : up.last_error_at;
    $('upstream').textContent = up.state + (since ? ' since ' + since : '') + (up.url ? ' (' + up.url + ')' : '');
    $('upstream-error').textContent = up.last_error ? up.last_error + (up.last_error_at ? ' at ' + up.last_error_at : '') : 'none';
    $('outbox').textContent = up.outbox.frames + ' frames, ' + up.outbox.bytes + ' bytes';
  }
  const room = s.rooms && s.rooms.rooms.find((r) => r.id === s.rooms.device_room);
  const st = room ? room.state : {};
  const agent = st.agentConnected ? 'connected' : 'not connected';
  const status = st.agentStatus && st.agentStatus.payload ? st.agentStatus.payload.state : null;
  $('agent').textContent = agent + (s.facts.recording ? ', recording' : '') +
    (status ? ', status ' + status : '') + (st.activeSession ? ', session ' + st.activeSession : '');
  $('store').textContent = (s.store.fault ? 'FAULT' : 'ok') + ', ' + s.store.size_bytes + ' bytes' +
    (s.store.write_failures ? ', ' + s.store.write_failures + ' failed writes' : '');
  const p = s.pairing || {};
  $('pairing').textContent = p.paired ? 'paired as ' + p.name + ' (device ' + p.device_id + ') with ' + p.server : 'not paired';
  const t = p.token || {};
  $('token-expiry').textContent = t.expires_at ? t.expires_at + ' (' + t.state + ')' : '';
  $('uptime').textContent = duration(s.uptime_seconds);
  const list = $('participants');
  list.replaceChildren();
  const people = room ? room.participants : [];
  if (people.length === 0) {
    const li = document.createElement('li');
    li.className = 'muted';
    li.textContent = 'nobody';
    list.append(li);
  }
  for (const who of people) {
    const li = document.createElement('li');
    li.textContent = who.role + (who.label ? ' "' + who.label + '"' : '') + ' (' + who.id + ')';
    list.append(li);
  }
}

function follow() {
  const es = new EventSource('/events');
  es.addEventListener('status', (e) => {
    render(JSON.parse(e.data));
    $('live').textContent = 'live, ' + new Date().toLocaleTimeString();
  });
  es.onerror = () => { $('live').textContent = 'reconnecting…'; };
}

async function loadTokens() {
  const all = await api('GET', '/api/tokens');
  const body = $('tokens');
  body.replaceChildren();
  for (const t of all) {
    const tr = document.createElement('tr');
    tr.id = 'token-' + t.id;
    for (const v of [t.id, t.role, t.label, t.created_at, t.revoked ? 'revoked' : 'active']) {
      const td = document.createElement('td');
      td.textContent = v;
      tr.append(td);
    }
    const td = document.createElement('td');
    if (!t.revoked) {
      const b = document.createElement('button');
      b.type = 'button';
      b.id = 'revoke-' + t.id;
      b.textContent = 'Revoke';
      b.addEventListener('click', async () => {
        try {
          await api('POST', '/api/tokens/revoke', { id: t.id });
          say('token-result', 'Revoked ' + t.id + '.', true);
        } catch (e) { say('token-result', e.message, false); }
        loadTokens();
      });
      td.append(b);
    }
    tr.append(td);
    body.append(tr);
  }
}

function on(id, f) {
  $(id).addEventListener('submit', (e) => { e.preventDefault(); f(); });
}

async function main() {
  const s = await api('GET', '/api/session');
  csrf = s.csrf;
  render(await api('GET', '/api/status'));
  follow();
  loadTokens();
  on('logout-form', async () => {
    await fetch('/logout', { method: 'POST', headers: { 'X-CSRF-Token': csrf }, credentials: 'same-origin' });
    location.href = '/';
  });
  on('identify-form', async () => {
    try {
      const r = await api('POST', '/api/identify', { seconds: Number($('identify-seconds').value) });
      say('identify-result', r.message, true);
    } catch (e) { say('identify-result', e.message, false); }
  });
  on('pair-form', async () => {
    say('pair-result', 'Pairing…', true);
    try {
      const r = await api('POST', '/api/pair', {
        server: $('pair-server').value, device_uuid: $('pair-uuid').value,
        code: $('pair-code').value, name: $('pair-name').value,
      });
      say('pair-result', r.message, true);
    } catch (e) { say('pair-result', e.message, false); }
    $('pair-code').value = '';
  });
  on('token-form', async () => {
    try {
      const r = await api('POST', '/api/tokens', { role: $('token-role').value, label: $('token-label').value });
      const box = $('token-new');
      box.className = 'result ok';
      box.replaceChildren();
      const p = document.createElement('p');
      p.textContent = 'New ' + r.record.role + ' token ' + r.record.id + '. It is shown this once; copy it now:';
      const code = document.createElement('code');
      code.className = 'token';
      code.id = 'token-value';
      code.textContent = r.token;
      box.append(p, code);
    } catch (e) { say('token-result', e.message, false); }
    loadTokens();
  });
}

main().catch((e) => { $('live').textContent = e.message; });
