// app.js - the console's pages.  Every value from the gate, and so from
// a webhook body, reaches the page through textContent or DOM attributes:
// never as markup (no innerHTML), whatever the CSP would still stop.
import { draw } from './diagram.js';

const TOKEN_KEY = 'qgate-token';
let timer = null;
let machine = null;

const $ = id => document.getElementById(id);

class Unauthorized extends Error {}

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
  for (const s of ['login', 'overview', 'ticket']) $(s).hidden = s !== id;
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

function fillCounts(tbody, counts) {
  tbody.replaceChildren();
  for (const [k, v] of Object.entries(counts)) {
    const n = text('td', v, 'num');
    tbody.appendChild(row([text('td', k), n]));
  }
}

async function overview() {
  const o = await get('/overview');
  show('overview');
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
  const enc = encodeURIComponent(id);
  const t = await get('/tickets/' + enc);
  const steps = await get('/tickets/' + enc + '/steps');
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
  steps.forEach((s, i) => {
    const st = s.step;
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
  const dt = $('t-durations').tBodies[0];
  dt.replaceChildren();
  for (const [s, ms] of spent) dt.appendChild(row([s, duration(ms)]));
  if (steps.length && !t.final)
    dt.appendChild(row([steps[steps.length - 1].step.to, 'current state']));
}

async function route() {
  clearInterval(timer);
  timer = null;
  const h = new URLSearchParams(location.hash.slice(1));
  try {
    if (h.has('ticket')) {
      await ticket(h.get('ticket'));
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
$('login-form').addEventListener('submit', ev => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token').value);
  route();
});
window.addEventListener('hashchange', route);
route();
