// server.js - the receiver a JavaScript team would write for qgate's job,
// for tests/bench/run.sh to load beside qgate: Node's http module, the
// lifecycle in XState, histories in LMDB through the lmdb package.  It
// checks Chup's signature, decides legality, dedups redeliveries and
// appends each accepted step, answering after the commit.  It does not
// reorder, forward, rate-limit or keep a rejection log.
//   node server.js PORT DB SECRET_FILE sync|nosync
'use strict';
const http = require('http');
const crypto = require('crypto');
const fs = require('fs');
const { createMachine, transition } = require('xstate');
const { open } = require('lmdb');

const [port, dir, secretFile, durability] = process.argv.slice(2);
const secret = fs.readFileSync(secretFile, 'utf8').trim();
// sync: an answer waits for its batch's flush, as qgate's group commit
// does (lmdb's write promises resolve at the commit; db.flushed, once
// it is on disk); nosync: committed, flushed when the OS likes.
const sync = durability !== 'nosync';
const db = open({ path: dir, noSync: !sync });
const tickets = db.openDB('tickets');  // live-queue or appointment id -> ticket
const digests = db.openDB('digests');  // payload SHA-256 -> 1
const history = db.openDB('history');  // [ticket id, seq] -> step

// The lifecycle: machine/ticket.rl, as XState.
const waiting = (self) => ({
  ALERT: self, UPDATE: self, SERVE: 'serving', MOVE: 'moved',
  NO_SHOW: 'no_show', CANCEL: 'cancelled',
});
const machine = createMachine({
  id: 'ticket', initial: 'new',
  states: {
    new: { on: { BOOK: 'booked', JOIN: 'queued', ARRIVE: 'arrived' } },
    booked: { on: { RESCHEDULE: 'booked', ALERT: 'booked', UPDATE: 'booked',
      JOIN: 'queued', ARRIVE: 'arrived', NO_SHOW: 'no_show', CANCEL: 'cancelled' } },
    queued: { on: { ...waiting('queued'), ARRIVE: 'arrived' } },
    arrived: { on: waiting('arrived') },
    moved: { on: { ...waiting('moved'), ARRIVE: 'arrived' } },
    serving: { on: { ALERT: 'serving', UPDATE: 'serving', COMPLETE: 'served',
      MOVE: 'moved' } },
    served: { on: { UPDATE: 'served', MOVE: 'moved', RX_RECEIVE: 'pharmacy_received',
      PAY: 'paid', END_VISIT: 'visit_ended' } },
    no_show: { on: { UPDATE: 'no_show', JOIN: 'queued', ARRIVE: 'arrived',
      CANCEL: 'cancelled' } },
    pharmacy_received: { on: { ALERT: 'pharmacy_received',
      UPDATE: 'pharmacy_received', RX_DISPENSE: 'pharmacy_dispensed' } },
    pharmacy_dispensed: { on: { UPDATE: 'pharmacy_dispensed', MOVE: 'moved',
      PAY: 'paid', END_VISIT: 'visit_ended' } },
    paid: { on: { UPDATE: 'paid', MOVE: 'moved', RX_RECEIVE: 'pharmacy_received',
      END_VISIT: 'visit_ended' } },
    cancelled: { type: 'final' },
    visit_ended: { type: 'final' },
  },
});

// Chup's vocabulary (docs/mapping.md's defaults).
const byState = {
  inqueue: 'JOIN', arrived: 'ARRIVE', serving: 'SERVE', served: 'COMPLETE',
  completed: 'COMPLETE', noshow: 'NO_SHOW', cancelled: 'CANCEL', canceled: 'CANCEL',
  moved: 'MOVE', pharmacyreceived: 'RX_RECEIVE', received: 'RX_RECEIVE',
  pharmacydispensed: 'RX_DISPENSE', dispensed: 'RX_DISPENSE', paid: 'PAY',
  visitended: 'END_VISIT', endvisit: 'END_VISIT', ended: 'END_VISIT',
  alert: 'ALERT', alerted: 'ALERT', booked: 'BOOK', confirmed: 'BOOK',
  rescheduled: 'RESCHEDULE',
};
const names = { JOIN: 'queued', ARRIVE: 'arrived', SERVE: 'serving',
  COMPLETE: 'served', NO_SHOW: 'no_show', CANCEL: 'cancelled', MOVE: 'moved',
  RX_RECEIVE: 'pharmacy_received', RX_DISPENSE: 'pharmacy_dispensed',
  PAY: 'paid', END_VISIT: 'visit_ended', BOOK: 'booked' };

function eventOf(p, t) {
  const d = p.data;
  if (p.event === 'appointment_created') return 'BOOK';
  if (p.event === 'appointment_deleted' || p.event === 'live_queue_deleted') return 'CANCEL';
  if (!/^(appointment|live_queue)_(created|updated)$/.test(p.event)) return null;
  const name = String(d.state_name || (d.state && d.state.name) || '')
    .toLowerCase().replace(/[\s_-]/g, '');
  let ev = byState[name] || (d.state === 1 ? 'JOIN' : d.state === 3 ? 'ARRIVE' : null);
  if (!ev || !t || !p.event.endsWith('_updated')) return ev;
  const same = names[ev] === t.state || (ev === 'JOIN' && t.state === 'moved');
  const waits = ['queued', 'arrived', 'moved'].includes(t.state);
  if (p.event === 'live_queue_updated' && d.service_id !== t.service &&
      (same || (waits && (ev === 'JOIN' || ev === 'ARRIVE')))) return 'MOVE';
  if (!same) return ev;
  if (p.event === 'appointment_updated')
    return d.appointment_date !== t.date || d.appointment_time !== t.time ? 'RESCHEDULE' : 'UPDATE';
  return 'UPDATE';
}

function answer(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

// Everything from the lookups to the writes runs in one write
// transaction, so two deliveries of one ticket never race.
function decide(p, raw, digest) {
  if (digests.get(digest)) return [200, { verdict: 'duplicate' }];
  const d = p.data;
  const appt = p.event.startsWith('appointment_');
  const key = appt ? 'a' + (d.appointment_id || d.id) : 'q' + d.id;
  let t = tickets.get(key);
  if (!t && !appt && d.appointment_id) t = tickets.get('a' + d.appointment_id);
  const ev = eventOf(p, t);
  if (!ev) return [422, { verdict: 'rejected', code: 'unknown_state' }];
  const ts = Date.parse(p.timestamp);
  if (t && ts < t.last) return [409, { verdict: 'rejected', code: 'stale' }];
  const from = t ? t.state : 'new';
  const snap = machine.resolveState({ value: from });
  if (!snap.can({ type: ev }))
    return [409, { verdict: 'rejected', code: 'illegal_transition', event: ev, from }];
  const to = transition(machine, snap, { type: ev })[0].value;
  if (!t) t = { id: db.get('next') || 1, seq: 0 };
  if (t.seq === 0) db.put('next', t.id + 1);
  t.seq++;
  Object.assign(t, { state: to, last: ts, service: d.service_id,
    date: d.appointment_date, time: d.appointment_time });
  if (!appt) t.lq = d.id;
  if (d.appointment_id) t.appt = d.appointment_id;
  if (t.lq) tickets.put('q' + t.lq, t);
  if (t.appt) tickets.put('a' + t.appt, t);
  history.put([t.id, t.seq], { event: ev, from, to, ts, received: Date.now(), raw });
  digests.put(digest, 1);
  return [200, { verdict: 'accepted', ticket: t.id, seq: t.seq, event: ev, from, to }];
}

http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const raw = Buffer.concat(chunks).toString('utf8');
    let body;
    try { body = JSON.parse(raw); } catch (e) {
      return answer(res, 400, { verdict: 'malformed', detail: e.message });
    }
    // Chup signs the payload's bytes as sent (PHP's escaping included),
    // which JSON.stringify would not give back: take them from the text.
    const m = /^\s*\{\s*"payload"\s*:\s*([\s\S]*?)\s*,\s*"signature"\s*:\s*"[0-9a-f]{64}"\s*\}\s*$/.exec(raw);
    if (!m || !body.payload || typeof body.payload.data !== 'object')
      return answer(res, 400, { verdict: 'malformed' });
    const payload = m[1];
    const mac = crypto.createHmac('sha256', secret).update(payload).digest();
    const sig = Buffer.from(body.signature, 'hex');
    if (sig.length !== mac.length || !crypto.timingSafeEqual(sig, mac))
      return answer(res, 401, { verdict: 'unauthenticated' });
    const digest = crypto.createHash('sha256').update(payload).digest('hex');
    db.transaction(() => decide(body.payload, raw, digest))
      .then(async (r) => { if (sync) await db.flushed; return r; })
      .then(([status, verdict]) => answer(res, status, verdict))
      .catch((e) => answer(res, 503, { verdict: 'error', detail: String(e) }));
  });
}).listen(Number(port), '127.0.0.1');
