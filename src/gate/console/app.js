// app.js - the console's pages: overview, ticket search, ticket, refusals (replay), held
// deliveries, dead letters (retry), waiting times.  Every value from the gate, and so from
// a webhook body, reaches the page through textContent or DOM attributes:
// never as markup (no innerHTML), whatever the CSP would still stop.
import { draw } from './diagram.js';

const TOKEN_KEY = 'qgate-token';
const ADMIN_KEY = 'qgate-admin-token';
const PAGES = ['login', 'overview', 'tickets', 'refusals', 'held', 'dead', 'waits', 'ticket'];
let timer = null;
let machine = null;
// true under `qgate console`, which writes nothing: no Replay or Retry
// button then.  /overview says it; it does not change while the program
// runs.
let readOnly = null;

const $ = id => document.getElementById(id);

class Unauthorized extends Error {}
class NeedAdmin extends Error {}

// GET a JSON resource of the read API, with the read token if one is kept.
async function get(path) {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = 'Bearer ' + token;
  const res = await fetch(path, { headers, cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized(path);
  const body = await res.json();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${body.error || ''}`);
  return body;
}

// POST an admin action (replay, retry) with the admin token, as JSON: the
// gate refuses other types and other origins (docs/console.md, CSRF).
async function post(path) {
  const token = sessionStorage.getItem(ADMIN_KEY);
  if (!token) throw new NeedAdmin('Replay and retry need the admin token.');
  const res = await fetch(path, {
    method: 'POST', cache: 'no-store', body: '{}',
    headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' },
  });
  const body = await res.json();
  if (res.status === 401 || (res.status === 403 && body.code === 'forbidden')) {
    sessionStorage.removeItem(ADMIN_KEY);
    throw new NeedAdmin(`The gate refused this admin token (${res.status}): ${body.error}`);
  }
  return { status: res.status, body };
}

function text(tag, value, cls) {
  const e = document.createElement(tag);
  e.textContent = value === null || value === undefined ? '' : String(value);
  if (cls) e.className = cls;
  return e;
}

function row(cells, cls) {
  const tr = document.createElement('tr');
  for (const c of cells) tr.appendChild(c instanceof Node ? c : text('td', c));
  if (cls) tr.className = cls;
  return tr;
}

function duration(ms) {
  if (ms === null || ms === undefined || ms < 0) return '';
  const s = Math.round(ms / 1000);
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

function show(id) {
  for (const s of PAGES) $(s).hidden = s !== id;
  $('error').hidden = true;
}

function fail(err) {
  if (err instanceof Unauthorized) {
    const had = sessionStorage.getItem(TOKEN_KEY);
    show('login');
    $('login-error').textContent = had ? 'The gate refused this token (401).' : 'The gate asks for a token (401).';
    return;
  }
  $('error').textContent = String(err.message || err);
  $('error').hidden = false;
}

function setReadOnly(o) {
  readOnly = o.read_only === true;
  $('read-only').hidden = !readOnly;
}

async function isReadOnly() {
  if (readOnly === null) setReadOnly(await get('/overview'));
  return readOnly;
}

function fillCounts(tbody, counts) {
  tbody.replaceChildren();
  for (const [k, v] of Object.entries(counts)) {
    const n = text('td', v, 'num');
    tbody.appendChild(row([text('td', k), n]));
  }
}

// Deliveries per minute as stacked bars, one colour (class) per verdict.
function rateChart(r) {
  const W = 900, H = 160, top = 10, bottom = 24, left = 34;
  const n = r.counts.length;
  const totals = r.counts.map(row => row.reduce((a, b) => a + b, 0));
  const max = Math.max(1, ...totals);
  const bw = (W - left - 10) / n;
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img' }, 'rate');
  chart.appendChild(svg('line', { x1: left, y1: H - bottom, x2: W - 10, y2: H - bottom }, 'axis'));
  chart.appendChild(svg('text', { x: left - 4, y: top + 4, 'text-anchor': 'end' }, 'tick')).textContent = max;
  r.counts.forEach((row, i) => {
    let y = H - bottom;
    row.forEach((c, v) => {
      if (!c) return;
      const h = (H - top - bottom) * c / max;
      y -= h;
      const bar = svg('rect', { x: left + i * bw, y, width: Math.max(bw - 0.5, 0.5), height: h },
        'bar v-' + r.verdicts[v]);
      bar.dataset.count = String(c);
      bar.appendChild(svg('title', {})).textContent =
        `${new Date(r.start_ms + i * r.minute_ms).toLocaleTimeString()}: ${c} ${r.verdicts[v]}`;
      chart.appendChild(bar);
    });
    if (i % 30 === 0) {
      chart.appendChild(svg('text', { x: left + i * bw, y: H - bottom + 14 }, 'tick')).textContent =
        new Date(r.start_ms + i * r.minute_ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
    }
  });
  const legend = svg('g', {}, 'legend');
  r.verdicts.forEach((v, i) => {
    legend.appendChild(svg('rect', { x: left + 10 + i * 110, y: 2, width: 10, height: 10 }, 'bar v-' + v));
    legend.appendChild(svg('text', { x: left + 24 + i * 110, y: 11 }, 'tick')).textContent = v;
  });
  chart.appendChild(legend);
  return [chart, totals.reduce((a, b) => a + b, 0)];
}

async function overview() {
  const [o, rate] = await Promise.all([get('/overview'), get('/deliveries')]);
  const [chart, total] = rateChart(rate);
  $('ov-rate').replaceChildren(chart);
  $('ov-rate-total').textContent = total;
  $('ov-rate-since').textContent = rate.since_ms ? 'first counted ' + new Date(rate.since_ms).toLocaleString() :
    'none yet';
  show('overview');
  setReadOnly(o);
  $('ov-tickets').textContent = o.tickets;
  $('ov-refused').textContent = o.refused;
  $('ov-held').textContent = o.held;
  $('ov-outbox').textContent = o.outbox_depth;
  $('ov-dead').textContent = o.dead;
  $('ov-dead').className = 'n' + (o.dead ? ' bad' : '');
  const his = !o.upstream ? 'none set' : o.upstream_reachable ? 'reachable' : 'unreachable';
  $('ov-his').textContent = his;
  $('ov-his').className = 'n ' + (his === 'unreachable' ? 'bad' : 'good');
  fillCounts($('ov-states').tBodies[0], o.states);
  fillCounts($('ov-reasons').tBodies[0], o.reasons);
  $('refreshed').textContent = new Date().toLocaleTimeString();
}

// The body as sent, indented when it is JSON; as text either way.
function pretty(body) {
  if (body === null) return '(purged)';
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

async function ticket(id) {
  machine = machine || await get('/machine');
  // The gate reads the path as sent, with no percent-decoding: the colon
  // of lq:, appt: and ticket: goes as it is (a path may hold one).
  const enc = encodeURIComponent(id).replace(/%3A/gi, ':');
  const t = await get('/tickets/' + enc);
  const [steps, dl] = await Promise.all([get('/tickets/' + enc + '/steps'),
    get('/tickets/' + enc + '/deliveries')]);
  show('ticket');
  $('t-title').textContent = id;
  const ids = [`ticket ${t.ticket}`];
  if (t.live_queue_id !== null) ids.push(`live queue ${t.live_queue_id}`);
  if (t.appointment_id !== null) ids.push(`appointment ${t.appointment_id}`);
  $('t-summary').textContent = `${ids.join(', ')}: ${t.state}${t.final ? ' (final)' : ''}, ` +
    `${steps.length} steps, ${t.rejections} refused`;
  // The name from the last body that has one: attacker-controlled text.
  let patient = '';
  for (const s of steps) {
    try {
      const d = JSON.parse(s.body).payload.data;
      patient = d.client_name || d.registered_client_name || patient;
    } catch {
      // purged or not Chup's form: keep the last name found
    }
  }
  $('t-patient').textContent = patient;
  draw($('diagram'), machine, steps);
  const tbody = $('t-steps').tBodies[0];
  tbody.replaceChildren();
  const spent = new Map();
  // The refused and held deliveries, each before the first step that
  // happened after it (event_ms: the gate says which time it is).
  const others = dl.refused.map((d) => ({ kind: 'refused', d }))
    .concat(dl.held.map((d) => ({ kind: 'held', d })))
    .sort((a, b) => a.d.event_ms - b.d.event_ms);
  let next = 0;
  const othersBefore = (ms) => {
    for (; next < others.length && !(others[next].d.event_ms >= ms); next++)
      otherRows(tbody, others[next]);
  };
  steps.forEach((s, i) => {
    const st = s.step;
    othersBefore(Date.parse(st.timestamp));
    const late = text('td', st.late ? 'late' : '', st.late ? 'tag' : '');
    tbody.appendChild(row([i + 1, st.timestamp, st.event, st.from, st.to,
      duration(st.in_previous_state_ms), late], st.late ? 'step late' : 'step'));
    const details = document.createElement('details');
    details.appendChild(text('summary', `body (${st.body_bytes} bytes), verdict accepted`));
    details.appendChild(text('pre', pretty(s.body), 'body'));
    const td = document.createElement('td');
    td.colSpan = 7;
    td.appendChild(details);
    tbody.appendChild(row([td], 'body-row'));
    if (i > 0 && st.in_previous_state_ms >= 0) {
      const prev = steps[i - 1].step.to;
      spent.set(prev, (spent.get(prev) || 0) + st.in_previous_state_ms);
    }
  });
  othersBefore(Infinity);
  const dt = $('t-durations').tBodies[0];
  dt.replaceChildren();
  for (const [s, ms] of spent) dt.appendChild(row([s, duration(ms)]));
  if (steps.length && !t.final)
    dt.appendChild(row([steps[steps.length - 1].step.to, 'current state']));
}

// A refused or held delivery in the timeline: marked, not numbered, its
// body as text (attacker-controlled, as the steps' are).
function otherRows(tbody, o) {
  const d = o.d;
  const tag = text('td', o.kind === 'refused' ? `refused: ${d.code}` : 'held', 'tag');
  const at = d.event_time === 'event' ? d.timestamp : `${d.timestamp} (received)`;
  tbody.appendChild(row(['', at, d.event || '', d.from, '', '', tag], o.kind));
  const details = document.createElement('details');
  details.appendChild(text('summary', o.kind === 'refused'
    ? `body (${d.body_bytes} bytes), verdict ${d.verdict}: ${d.reason}`
    : `body (${d.body_bytes} bytes), held until ${when(d.expires_us)}`));
  details.appendChild(text('pre', pretty(d.body), 'body'));
  const td = document.createElement('td');
  td.colSpan = 7;
  td.appendChild(details);
  tbody.appendChild(row([td], 'body-row'));
}

function when(us) {
  return us === null || us === undefined ? '' : new Date(us / 1000).toLocaleString();
}

// A row under a list's row: the body as received, pretty-printed, as text.
function bodyRow(body, bytes, cols) {
  const details = document.createElement('details');
  details.appendChild(text('summary', `body (${bytes} bytes)`));
  details.appendChild(text('pre', pretty(body), 'body'));
  const td = document.createElement('td');
  td.colSpan = cols;
  td.appendChild(details);
  return row([td], 'body-row');
}

function button(label, cls, action) {
  const b = text('button', label, cls);
  b.type = 'button';
  b.addEventListener('click', action);
  const td = document.createElement('td');
  td.appendChild(b);
  return td;
}

// The admin action waiting for its token, run again once it is given.
let pending = null;

async function act(action) {
  $('admin-login').hidden = true;
  try {
    await action();
  } catch (err) {
    if (!(err instanceof NeedAdmin)) throw err;
    pending = action;
    $('admin-error').textContent = err.message;
    $('admin-login').hidden = false;
    $('admin-token').focus();
  }
}

function result(message, good) {
  $('admin-result').textContent = message;
  $('admin-result').className = 'result ' + (good ? 'good' : 'bad');
  $('admin-result').hidden = false;
}

async function replay(id) {
  const { status, body } = await post(`/rejections/${id}/replay`);
  if (status === 200) {
    const v = body.verdict;
    result(`Rejection ${id} replayed: ${v.verdict}${v.code === 'none' ? '' : ` (${v.code})`}` +
      (body.resolved ? `, now ticket ${v.ticket} step ${v.seq}` : ', still refused'), body.resolved);
  } else {
    result(`Rejection ${id}: ${body.error}`, false);
  }
  await refusals();
}

async function retry(id) {
  const { status, body } = await post(`/outbox/dead/${id}/retry`);
  result(status === 200 ? `Dead letter ${id}: ${body.moved} moved back to the outbox` :
    `Dead letter ${id}: ${body.error}`, status === 200);
  await dead();
}

function ticketIds(e) {
  if (e.live_queue_id !== null) return 'lq:' + e.live_queue_id;
  if (e.appointment_id !== null) return 'appt:' + e.appointment_id;
  return e.ticket === null ? '' : 'ticket:' + e.ticket;
}

// The ticket search: GET /tickets with the filters of the hash, which the
// form sets, so that a search is a link.
const SEARCH_KEYS = ['state', 'service', 'date'];

async function tickets(h) {
  machine = machine || await get('/machine');
  const q = new URLSearchParams();
  for (const k of SEARCH_KEYS) if (h.get(k)) q.set(k, h.get(k));
  const r = await get('/tickets?' + q.toString());
  show('tickets');
  const select = $('tk-state');
  for (const s of machine.states) {
    if (![...select.options].some(opt => opt.value === s.state)) {
      const opt = text('option', s.state);
      opt.value = s.state;
      select.appendChild(opt);
    }
  }
  select.value = h.get('state') || '';
  $('tk-service').value = h.get('service') || '';
  $('tk-date').value = h.get('date') || '';
  $('tk-count').textContent = r.more ? `The newest ${r.tickets.length} tickets that match; more match.` :
    `${r.tickets.length} tickets match.`;
  const tbody = $('tk-list').tBodies[0];
  tbody.replaceChildren();
  for (const t of r.tickets) {
    const cell = document.createElement('td');
    const a = text('a', t.ticket);
    a.href = '#' + new URLSearchParams({ ticket: 'ticket:' + t.ticket }).toString();
    cell.appendChild(a);
    const ids = [];
    if (t.live_queue_id !== null) ids.push('lq:' + t.live_queue_id);
    if (t.appointment_id !== null) ids.push('appt:' + t.appointment_id);
    tbody.appendChild(row([cell, ids.join(' '), t.state, t.service_id, t.records, t.rejections,
      t.last_event_ms ? new Date(t.last_event_ms).toLocaleString() : ''], 'ticket-row'));
  }
}

async function refusals() {
  const q = new URLSearchParams();
  const reason = $('ref-reason').value;
  if (reason) q.set('reason', reason);
  for (const [key, input] of [['since', 'ref-since'], ['until', 'ref-until']]) {
    const v = $(input).value;
    if (v) q.set(key, String(new Date(v).getTime()));
  }
  const [o, r] = await Promise.all([get('/overview'), get('/rejections?' + q.toString())]);
  show('refusals');
  setReadOnly(o);
  const select = $('ref-reason');
  for (const code of Object.keys(o.reasons)) {
    if (![...select.options].some(opt => opt.value === code)) {
      const opt = text('option', code);
      opt.value = code;
      select.appendChild(opt);
    }
  }
  $('ref-count').textContent = `${r.matched} refused deliveries match; the newest ${r.rejections.length} shown.`;
  const tbody = $('ref-list').tBodies[0];
  tbody.replaceChildren();
  for (const e of r.rejections) {
    let action;
    if (e.resolved) {
      action = text('td', e.resolved_seq ? `resolved: ticket ${e.resolved_ticket} step ${e.resolved_seq}` :
        'resolved: now ignored', 'tag-ok');
    } else if (e.truncated || e.purged) {
      action = text('td', e.truncated ? 'prefix kept: no replay' : 'purged: no replay', 'muted');
    } else if (readOnly) {
      action = text('td', 'open (read-only)', 'muted');
    } else {
      action = button('Replay', 'replay', () => act(() => replay(e.id)).catch(fail));
    }
    tbody.appendChild(row([e.id, when(e.received_us), e.verdict, e.code, ticketIds(e),
      e.event, e.reason, action], 'refusal' + (e.resolved ? ' resolved' : '')));
    tbody.appendChild(bodyRow(e.body, e.received_bytes, 8));
  }
}

async function held() {
  const h = await get('/held');
  show('held');
  $('held-count').textContent = `${h.held.length} held.`;
  const tbody = $('held-list').tBodies[0];
  tbody.replaceChildren();
  for (const e of h.held) {
    tbody.appendChild(row([e.id, when(e.received_us), ticketIds(e), e.chup_event, e.event,
      e.from, e.timestamp, duration(e.held_ms), when(e.expires_us)], 'held-row'));
    tbody.appendChild(bodyRow(e.body, e.body_bytes, 9));
  }
}

async function dead() {
  const [d, ro] = await Promise.all([get('/outbox/dead'), isReadOnly()]);
  show('dead');
  $('dead-count').textContent = `${d.dead.length} dead letters.`;
  const tbody = $('dead-list').tBodies[0];
  tbody.replaceChildren();
  for (const e of d.dead) {
    const ticketLink = document.createElement('td');
    const a = text('a', e.ticket);
    a.href = '#' + new URLSearchParams({ ticket: 'ticket:' + e.ticket }).toString();
    ticketLink.appendChild(a);
    const action = ro ? text('td', 'read-only', 'muted')
      : button('Retry', 'retry', () => act(() => retry(e.id)).catch(fail));
    tbody.appendChild(row([e.id, ticketLink, e.seq, e.attempts, e.last_error, when(e.gave_up_us),
      e.gave_up, action], 'dead-row'));
  }
}

const SVG = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, cls) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (cls) e.setAttribute('class', cls);
  return e;
}

// A bucket's bound, short: "2 min", "1.5 h", "more".
function bound(ms) {
  if (ms === null) return 'more';
  if (ms < 60000) return ms / 1000 + ' s';
  if (ms < 3600000) return ms / 60000 + ' min';
  return ms / 3600000 + ' h';
}

// One duration's histogram as inline SVG, drawn with DOM calls and styled
// by classes and SVG attributes only (the CSP allows no inline style).
function histogram(kind, d) {
  const W = 460, H = 150, top = 10, bottom = 40, left = 30;
  const buckets = d.buckets || [];
  const max = Math.max(1, ...buckets.map(b => b.count));
  const bw = buckets.length ? (W - left - 10) / buckets.length : 0;
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: 'img' }, 'histogram');
  chart.appendChild(svg('title', {})).textContent = `${kind}: ${d.count} samples`;
  chart.appendChild(svg('line', { x1: left, y1: H - bottom, x2: W - 10, y2: H - bottom }, 'axis'));
  chart.appendChild(svg('text', { x: left - 4, y: top + 4, 'text-anchor': 'end' }, 'tick')).textContent = max;
  buckets.forEach((b, i) => {
    const h = (H - top - bottom) * b.count / max;
    const x = left + i * bw;
    const bar = svg('rect', { x: x + 1, y: H - bottom - h, width: Math.max(bw - 2, 1), height: h }, 'bar');
    bar.appendChild(svg('title', {})).textContent = `≤ ${bound(b.le_ms)}: ${b.count}`;
    chart.appendChild(bar);
    const label = svg('text', { x: x + bw / 2, y: H - bottom + 12,
      transform: `rotate(40 ${x + bw / 2} ${H - bottom + 12})` }, 'tick');
    label.textContent = bound(b.le_ms);
    chart.appendChild(label);
  });
  return chart;
}

async function waits() {
  const w = await get('/waits');
  show('waits');
  const list = $('waits-list');
  list.replaceChildren();
  for (const svc of w.services) {
    const box = document.createElement('div');
    box.className = 'waits-service';
    box.dataset.service = svc.service_id === null ? 'all' : String(svc.service_id);
    box.appendChild(text('h3', svc.service_id === null ? 'All services' : `Service ${svc.service_id}`));
    const kinds = document.createElement('div');
    kinds.className = 'kinds';
    for (const kind of ['wait', 'service', 'visit']) {
      const d = svc.durations[kind];
      const fig = document.createElement('figure');
      fig.className = 'duration';
      fig.dataset.kind = kind;
      const cap = text('figcaption', `${kind}: ${d.count} ${d.count === 1 ? 'sample' : 'samples'}`);
      for (const p of ['p50', 'p90', 'p99']) {
        const v = d[p + '_ms'];
        const span = text('span', v === undefined ? '' : `${p} ${duration(v)}`, p);
        if (v !== undefined) span.dataset.ms = String(v);
        cap.appendChild(span);
      }
      fig.appendChild(cap);
      if (d.count) fig.appendChild(histogram(kind, d));
      kinds.appendChild(fig);
    }
    box.appendChild(kinds);
    list.appendChild(box);
  }
}

async function route() {
  clearInterval(timer);
  timer = null;
  $('admin-login').hidden = true;
  $('admin-result').hidden = true;
  const h = new URLSearchParams(location.hash.slice(1));
  try {
    if (h.has('ticket')) {
      await ticket(h.get('ticket'));
    } else if (h.has('tickets')) {
      await tickets(h);
    } else if (h.has('refusals')) {
      await refusals();
    } else if (h.has('held')) {
      await held();
    } else if (h.has('dead')) {
      await dead();
    } else if (h.has('waits')) {
      await waits();
    } else {
      await overview();
      timer = setInterval(() => overview().catch(fail), 5000);
    }
  } catch (err) {
    fail(err);
  }
}

$('search').addEventListener('submit', ev => {
  ev.preventDefault();
  const id = $('search-id').value.trim();
  if (id) location.hash = new URLSearchParams({ ticket: id }).toString();
});
$('tk-filter').addEventListener('submit', ev => {
  ev.preventDefault();
  const q = new URLSearchParams();
  q.set('tickets', '');
  for (const [k, input] of [['state', 'tk-state'], ['service', 'tk-service'], ['date', 'tk-date']]) {
    const v = $(input).value.trim();
    if (v) q.set(k, v);
  }
  const hash = '#' + q.toString();
  if (location.hash === hash) route();
  else location.hash = hash;
});
$('login-form').addEventListener('submit', ev => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value);
  route();
});
$('ref-filter').addEventListener('submit', ev => {
  ev.preventDefault();
  refusals().catch(fail);
});
$('admin-form').addEventListener('submit', ev => {
  ev.preventDefault();
  sessionStorage.setItem(ADMIN_KEY, $('admin-token').value);
  $('admin-token').value = '';
  const action = pending;
  pending = null;
  $('admin-login').hidden = true;
  if (action) act(action).catch(fail);
});
$('admin-cancel').addEventListener('click', () => {
  pending = null;
  $('admin-login').hidden = true;
});
window.addEventListener('hashchange', route);
route();
