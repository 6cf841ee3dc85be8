// The gslb node dashboard: polls this node's admin API every second and
// renders its status (header, region cards with every prober's vote, RTT
// matrix, health transitions). Plain DOM, no framework, text only through
// textContent.
'use strict';

const POLL_MS = 1000;
const TIMEOUT_MS = 3000;
const MAX_EVENTS = 100;

let lastOK = null; // Date of the last answer
const pending = {}; // region -> "kill" | "kill-servers" | "start" while a demo request runs

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat()) {
    if (k === undefined || k === null || k === false) continue;
    e.append(k instanceof Node ? k : String(k));
  }
  return e;
}

// mark is a state marker: shape, word and colour (never colour alone).
function mark(state) {
  const text = { up: '▲ UP', down: '▼ DOWN', drained: '■ DRAINED', unknown: '? UNKNOWN' }[state] || state;
  return el('span', { class: 'mark ' + state }, text);
}

function hms(t) {
  const d = new Date(t);
  return isNaN(d) || d.getUTCFullYear() < 2000 ? '' : d.toISOString().slice(11, 19) + 'Z';
}

const ms = (ns) => (ns / 1e6).toFixed(ns < 1e7 ? 2 : 1);

// The admin token, when the node asks for one (HTTP 401): kept for this
// tab only, sent as a bearer token.
let token = sessionStorage.getItem('gslb-token') || '';
let asked = false;

function headers() {
  return token ? { Authorization: 'Bearer ' + token } : {};
}

async function getJSON(url) {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), TIMEOUT_MS);
  try {
    const r = await fetch(url, { cache: 'no-store', signal: ctl.signal, headers: headers() });
    if (r.status === 401 && !asked) {
      asked = true;
      const t = window.prompt('This node asks for its admin token (admin_token):');
      if (t) {
        token = t.trim();
        sessionStorage.setItem('gslb-token', token);
        asked = false;
      }
    }
    if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
    return await r.json();
  } finally {
    clearTimeout(timer);
  }
}

// demo is true when the page is served through `gslb demo`'s control
// listener, which answers /demo/regions (same origin) and offers kill and
// start buttons; a node alone answers 404 and the page shows none.
let demo = null;

async function tick() {
  try {
    const [st, events] = await Promise.all([getJSON('/api/v1/status'), getJSON('/api/v1/events')]);
    let alive = null; // region -> {alive, servers}, from the demo's control endpoint
    if (demo !== false) {
      try {
        alive = {};
        for (const r of await getJSON('/demo/regions')) alive[r.name] = r;
        demo = true;
      } catch (e) {
        alive = null;
        if (demo === null) demo = false;
      }
    }
    lastOK = new Date();
    render(st, events || [], alive);
    connection(null);
  } catch (e) {
    connection(e);
  }
  setTimeout(tick, POLL_MS);
}

function connection(err) {
  const c = document.getElementById('conn');
  document.body.classList.toggle('stale', !!err);
  if (!err) {
    c.dataset.state = 'ok';
    c.hidden = true;
    return;
  }
  c.dataset.state = 'down';
  c.hidden = false;
  c.className = 'banner bad';
  c.textContent = 'node not answering (' + (err.name === 'AbortError' ? 'timed out' : err.message) +
    '): retrying every second' + (lastOK ? '; last answer at ' + hms(lastOK) + ', the page below is from then' : '');
}

function render(st, events, alive) {
  document.title = 'gslb ' + st.node;
  document.getElementById('node').textContent = st.node + ' (' + st.region + ')';
  const cl = st.cluster;
  const facts = [
    ['node', st.node],
    ['region', st.region],
    ['raft role', cl ? cl.role : 'standalone'],
    ['leader', cl ? cl.leader || 'none' : '-'],
    ['quorum', cl ? (cl.quorum ? 'yes' : 'NO') : '-'],
    ['state index', st.state_index],
    ['zones', Object.entries(st.zones || {}).sort().map(([z, s]) => z + ' serial ' + s).join(', ') || 'none'],
  ];
  if (cl && cl.restoring) facts.push(['state', 'RESTORING from this node\'s snapshot and log']);
  else if (cl && !cl.can_apply) facts.push(['state', 'CANNOT APPLY: ' + (cl.apply_error || 'writes fail') + ' (' + cl.behind + ' behind)']);
  else if (cl && cl.behind > 0) facts.push(['state', cl.behind + ' entries behind the leader']);
  if (cl) {
    const silent = (cl.members || []).filter((m) => !m.Self && m.LastContact && new Date(st.time) - new Date(m.LastContact) > 5000);
    if (silent.length) facts.push(['not heard from', silent.map((m) => m.ID).join(', ')]);
  }
  if (st.proxy) facts.push(['proxy', st.proxy.healthy ? 'healthy' : 'UNHEALTHY']);
  if (st.proxy && st.proxy.spill) facts.push(['spill-over', spillText(st.proxy.spill)]);
  if ((st.overrides || []).length) facts.push(['overrides', st.overrides.map((o) => o.action + ' ' + o.kind + ' ' + o.name).join(', ')]);
  facts.push(['updated', hms(st.time)]);
  document.getElementById('facts').replaceChildren(...facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-fact': k }, v)]));
  document.getElementById('quorum').hidden = !cl || cl.quorum;

  document.getElementById('regions').replaceChildren(...(st.regions || []).map((r) => regionCard(st, r, alive)));
  document.getElementById('rtt').replaceChildren(rttTable(st.rtt || []));
  renderEvents(st, events);
}

function regionCard(st, r, alive) {
  const state = r.drained ? 'drained' : r.up ? 'up' : 'down';
  const card = el('article', { class: 'card region ' + state, id: 'region-' + r.name, 'data-region': r.name, 'data-state': state },
    el('h3', {}, r.name, ' ', mark(state), r.name === st.region ? el('span', { class: 'tag' }, 'this node') : null));
  if (r.load) {
    const l = r.load;
    card.append(el('p', { class: 'load', 'data-utilisation': l.utilisation },
      'proxy load ' + Math.round(l.utilisation * 100) + '%: ' + l.available + '/' + l.backends + ' servers, ' +
      l.in_flight + ' in flight, ' + l.rate.toFixed(1) + ' req/s, ' + (l.latency / 1e6).toFixed(1) + ' ms'));
  }
  if (demo) {
    const d = alive && r.name in alive ? alive[r.name] : { alive: r.up, servers: r.up };
    const button = (action, label) => el('button', {
      class: 'demo ' + action, 'data-action': action, disabled: !!pending[r.name],
      onclick: () => demoAction(action, r.name),
    }, label);
    if (!d.alive) {
      card.append(el('p', { class: 'tag killed' }, 'killed by the demo'));
      card.append(button('start', pending[r.name] ? 'Starting…' : 'Start region'));
    } else if (!d.servers) {
      card.append(el('p', { class: 'tag killed' }, 'servers stopped by the demo: its proxy spills requests to the next region'));
      card.append(button('start', pending[r.name] ? 'Starting…' : 'Start servers'));
    } else {
      card.append(button('kill', pending[r.name] === 'kill' ? 'Killing…' : 'Kill region'), ' ',
        button('kill-servers', pending[r.name] === 'kill-servers' ? 'Stopping…' : 'Kill servers'));
    }
  }
  for (const p of (st.pools || []).filter((p) => p.region === r.name)) {
    card.append(el('h4', {}, 'pool ', p.name));
    for (const m of p.members || []) card.append(memberView(m));
  }
  return card;
}

function memberView(m) {
  const state = m.up ? 'up' : 'down';
  const div = el('div', { class: 'member', 'data-member': m.addr, 'data-state': state },
    el('p', {}, mark(state), ' ', el('b', {}, m.addr), m.known ? '' : ' (no verdict yet)',
      m.since ? el('small', {}, ' since ' + hms(m.since)) : null),
    m.check ? el('p', { class: 'check' }, m.check) : null);
  if ((m.probers || []).length) {
    div.append(el('table', { class: 'votes' },
      el('thead', {}, el('tr', {}, ['prober', 'vote', 'report', 'reason'].map((h) => el('th', {}, h)))),
      el('tbody', {}, m.probers.map((v) => el('tr', { 'data-prober': v.prober },
        el('td', {}, v.prober, v.region && v.region !== v.prober ? el('small', {}, ' (' + v.region + ')') : null),
        el('td', {}, mark(v.up ? 'up' : 'down')),
        el('td', {}, v.fresh ? 'fresh' : el('span', { class: 'warn' }, 'stale'), v.suspect ? el('span', { class: 'warn' }, ' suspect') : null),
        el('td', { class: 'reason' }, shortReason(v.reason, m.check), v.rtt_ns ? el('small', {}, ' ' + ms(v.rtt_ns) + ' ms') : null))))));
  }
  return div;
}

// shortReason drops the check URL, shown above the votes, from a reason.
function shortReason(reason, check) {
  reason = reason || '';
  for (const p of [check + ': ', 'GET ' + check + ': ', 'HEAD ' + check + ': ']) {
    if (check && reason.startsWith(p)) return reason.slice(p.length);
  }
  return reason;
}

function rttTable(rtt) {
  if (!rtt.length) return el('p', { class: 'note' }, 'no RTT measured yet');
  const froms = [...new Set(rtt.map((x) => x.from))].sort();
  const tos = [...new Set(rtt.map((x) => x.to))].sort();
  const cell = {};
  for (const x of rtt) cell[x.from + '\n' + x.to] = x;
  return el('table', { class: 'rtt' },
    el('thead', {}, el('tr', {}, el('th', {}, 'from \\ to'), tos.map((t) => el('th', {}, t)))),
    el('tbody', {}, froms.map((f) => el('tr', {}, el('th', {}, f), tos.map((t) => {
      const x = cell[f + '\n' + t];
      return el('td', {}, x ? ms(x.ewma_ns) + ' / ' + ms(x.min_ns) : '–');
    })))));
}

// target makes a probe key ("http|host|port|path|...") readable, naming the
// pool whose member it checks.
function target(st, key) {
  const f = (key || '').split('|');
  const url = f.length > 3 ? f[0] + '://' + (f[1].includes(':') ? '[' + f[1] + ']' : f[1]) + ':' + f[2] + f[3] : key;
  for (const p of st.pools || []) {
    for (const m of p.members || []) if (m.check === url) return p.name + ' ' + m.addr;
  }
  return url;
}

function renderEvents(st, events) {
  const rows = events.slice(-MAX_EVENTS).reverse().map((e) => el('tr', { 'data-to': e.To, class: e.Prober ? '' : 'verdict' },
    el('td', {}, hms(e.Time)),
    el('td', {}, e.Prober ? e.Prober + (e.Region && e.Region !== e.Prober ? ' (' + e.Region + ')' : '') : 'cluster verdict'),
    el('td', { title: e.Target || e.Key }, target(st, e.Key)),
    el('td', {}, mark(e.From), ' → ', mark(e.To)),
    el('td', { class: 'reason' }, e.Reason || '')));
  if (!rows.length) rows.push(el('tr', {}, el('td', { colspan: 5, class: 'note' }, 'no transitions yet')));
  document.querySelector('#events tbody').replaceChildren(...rows);
}

// spillText says where this node's proxy sends requests when its region
// has no server left, and how many it sent and received.
function spillText(s) {
  const to = (s.peers || []).map((p) => p.region + (p.up ? '' : ' (down)') + ': ' + p.sent).join(', ');
  const from = Object.entries(s.received || {}).sort().map(([r, n]) => r + ': ' + n).join(', ');
  return 'spilled to ' + (to || 'no peer') + (from ? '; received from ' + from : '');
}

const doing = { kill: 'killing ', 'kill-servers': 'stopping the servers of ', start: 'starting ' };
const done = {
  kill: ' killed: watch its card go down within a few seconds',
  'kill-servers': '\'s servers stopped: its proxy spills requests to the next region (see "spill-over" above when this page comes from that region), and its card goes down within a few seconds as DNS moves its clients',
  start: ' started: it comes back up after its health checks pass',
};

async function demoAction(action, region) {
  const msg = document.getElementById('demo-msg');
  pending[region] = action;
  msg.hidden = false;
  msg.textContent = doing[action] + region + '…';
  try {
    const r = await fetch('/demo/' + action, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ region: region }),
    });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.error || 'HTTP ' + r.status);
    msg.textContent = region + done[action];
  } catch (e) {
    msg.textContent = action + ' ' + region + ' failed: ' + e.message;
  } finally {
    delete pending[region];
  }
}

tick();
