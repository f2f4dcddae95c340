// diagram.js - the machine's chart, laid out here from GET /machine (the
// compiled machine, not a drawing), with a ticket's path drawn on it.
//
// Layout: the states entered only by the side events (no_show, cancel,
// move) go in the row below; the longest path from the first state over
// the others (back edges and self-loops left out) is the happy path, in
// one line; the rest of those sit above it.  Each side state stands under
// the mean place of its neighbours on the line, so that the edges to and
// from it stay between the line and that row and never cross the chart.
// The states and edges are all the machine's; only these three event
// names are the console's, to say which way is the side.  `qgate machine
// --dot` lays docs/lifecycle.svg out the same way (src/cli/cmd_machine.c).
//
// Labels: each edge's label (its events, and the order numbers of the
// ticket's steps that took it) is placed along its own curve where it
// covers no state and no label placed before it, trying the middle first;
// the gaps on the line are as wide as the label between them.
const SIDE_EVENTS = new Set(['no_show', 'cancel', 'move']);
const SVG = 'http://www.w3.org/2000/svg';
const H = 30;        // a state's height
const PAD = 9;       // room each side of a state's name
const MIN_W = 44;    // the narrowest state
const GAP = 26;      // the least room between two states on a row
const LOOP = 15;     // how far a self-loop stands out of its state
const LANE = 16;     // each column an arc spans lifts it this much more
const BAND = 112;    // between the line and the side row
const CLEAR = 2;     // the least room around a label

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

// A text's box without a browser to ask (layout() called alone): the
// widths of a sans-serif face, on the safe side.
function estimate(kind, s) {
  const size = kind === 'state' ? 12 : kind === 'order' ? 11 : 10;
  return { w: s.length * size * 0.62, h: size * 1.2, top: -size * 0.6 };
}

// The machine's states: which are on the line (the happy path, in
// order), which are side states, and its edges.
function graph(machine) {
  const names = machine.states.map(s => s.state);
  const finals = new Set(machine.states.filter(s => s.final).map(s => s.state));
  const edges = [];
  for (const s of machine.states)
    for (const [ev, to] of Object.entries(s.next)) edges.push({ from: s.state, to, ev });
  const start = names[0];
  const side = new Set(names.filter(n => n !== start &&
    edges.some(e => e.to === n && e.from !== n) &&
    edges.every(e => e.to !== n || e.from === n || SIDE_EVENTS.has(e.ev))));
  const out = new Map(names.map(n => [n, [...new Set(edges
    .filter(e => e.from === n && e.to !== n && !side.has(e.to)).map(e => e.to))]]));
  // Back edges: those to a state on the depth-first stack.
  const back = new Set(), seen = new Set(), onStack = new Set();
  const dfs = s => {
    seen.add(s); onStack.add(s);
    for (const to of out.get(s)) {
      if (onStack.has(to)) back.add(s + '>' + to);
      else if (!seen.has(to)) dfs(to);
    }
    onStack.delete(s);
  };
  dfs(start);
  const memo = new Map();
  const longest = s => {
    if (memo.has(s)) return memo.get(s);
    let best = [s];
    for (const to of out.get(s)) {
      if (back.has(s + '>' + to)) continue;
      const p = longest(to);
      if (p.length + 1 > best.length) best = [s, ...p];
    }
    memo.set(s, best);
    return best;
  };
  return { names, finals, edges, side, spine: longest(start) };
}

// A cubic Bézier's point at t.
function at(c, t) {
  const u = 1 - t;
  const a = u * u * u, b = 3 * u * u * t, d = 3 * u * t * t, e = t * t * t;
  return {
    x: a * c[0].x + b * c[1].x + d * c[2].x + e * c[3].x,
    y: a * c[0].y + b * c[1].y + d * c[2].y + e * c[3].y,
  };
}

function curveLength(c) {
  let len = 0, p = c[0];
  for (let i = 1; i <= 16; i++) {
    const q = at(c, i / 16);
    len += Math.hypot(q.x - p.x, q.y - p.y);
    p = q;
  }
  return len;
}

function overlap(a, b) {
  const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
  const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
  return w > 0 && h > 0 ? w * h : 0;
}

function grow(r, by) {
  return { x: r.x - by, y: r.y - by, w: r.w + 2 * by, h: r.h + 2 * by };
}

// {states: [{state, final, next: {event: to}}]} and the ticket's steps ->
// where each state and each edge goes, and where each label sits.
// measure(kind, text) gives a text's box ({w, h, top}: top is where the
// box starts from the text's y), kind 'state', 'label' or 'order'.
export function layout(machine, steps = [], measure = estimate) {
  const { names, finals, edges, side, spine } = graph(machine);
  const taken = new Map(); // "from>to" -> [order numbers]
  steps.forEach((s, i) => {
    const k = s.step.from + '>' + s.step.to;
    if (!taken.has(k)) taken.set(k, []);
    taken.get(k).push(i + 1);
  });
  // One edge per pair of states, naming all its events.
  const pairs = new Map();
  for (const e of edges) {
    const k = e.from + '>' + e.to;
    if (!pairs.has(k)) pairs.set(k, { key: k, from: e.from, to: e.to, evs: [] });
    pairs.get(k).evs.push(e.ev);
  }
  for (const p of pairs.values()) {
    p.label = p.evs.join(', ');
    p.order = taken.has(p.key) ? taken.get(p.key).join(',') : null;
    p.taken = taken.has(p.key);
  }
  const labelW = (a, b) => Math.max(0, ...[a + '>' + b, b + '>' + a]
    .filter(k => pairs.has(k)).map(k => measure('label', pairs.get(k).label).w));
  const gapBetween = (a, b) => Math.max(GAP, labelW(a, b) + 4 * CLEAR + 8);

  // Rows: 0 the others (above), 1 the line, 2 the side states.
  const pos = new Map();
  const row = new Map(), order = new Map();
  const width = s => Math.max(MIN_W, measure('state', s).w + 2 * PAD);
  let x = 10;
  spine.forEach((s, i) => {
    const w = width(s);
    pos.set(s, { x, w });
    row.set(s, 1);
    order.set(s, i);
    if (i + 1 < spine.length) x += w + gapBetween(s, spine[i + 1]);
  });
  const cx = s => pos.get(s).x + pos.get(s).w / 2;
  // Another row, each state under (or over) the mean place of its
  // neighbours on the line, pushed right as little as keeps them apart;
  // in the order of their mean column, as `qgate machine --dot` orders
  // the side row.
  const mean = a => a.length ? a.reduce((x, y) => x + y, 0) / a.length : 0;
  const placeRow = (states, r) => {
    const near = s => edges.filter(e => (e.from === s && row.get(e.to) === 1) ||
      (e.to === s && row.get(e.from) === 1)).map(e => e.from === s ? e.to : e.from);
    const list = states.map(s => ({ s, k: mean(near(s).map(n => order.get(n))),
      c: near(s).length ? mean(near(s).map(cx)) : cx(spine[0]), w: width(s) }))
      .sort((a, b) => a.k - b.k || names.indexOf(a.s) - names.indexOf(b.s));
    let right = -Infinity, prev = null;
    list.forEach((it, i) => {
      const left = Math.max(it.c - it.w / 2, prev ? right + gapBetween(prev, it.s) : 10);
      pos.set(it.s, { x: left, w: it.w });
      row.set(it.s, r);
      order.set(it.s, i);
      right = left + it.w;
      prev = it.s;
    });
  };
  placeRow(names.filter(s => side.has(s)), 2);
  placeRow(names.filter(s => !pos.has(s)), 0);

  // Which side of each state an edge leaves and enters by.
  const kindOf = p => {
    const ra = row.get(p.from), rb = row.get(p.to);
    if (p.from === p.to) return ra === 2 ? 'loop-below' : 'loop-above';
    if (ra !== rb) return 'across';
    if (Math.abs(order.get(p.from) - order.get(p.to)) === 1) return 'beside';
    return ra === 2 ? 'arc-below' : 'arc-above';
  };
  // Heights: arcs over the line stand higher the more columns they span,
  // so that a longer one passes over a shorter one and their labels part.
  const arcH = p => {
    const span = Math.abs(order.get(p.from) - order.get(p.to));
    const backward = order.get(p.from) > order.get(p.to);
    return LOOP + 16 + LANE * (span - 1) + (backward ? LANE / 2 : 0);
  };
  let topArcs = LOOP + 14, bottomArcs = LOOP + 14;
  for (const p of pairs.values()) {
    const k = kindOf(p);
    if (k === 'arc-above' && row.get(p.from) === 1) topArcs = Math.max(topArcs, arcH(p) + 14);
    if (k === 'arc-below') bottomArcs = Math.max(bottomArcs, arcH(p) + 14);
  }
  const hasOthers = names.some(s => row.get(s) === 0);
  const y0 = 10, y1 = (hasOthers ? y0 + H + 40 : y0) + topArcs, y2 = y1 + H + BAND;
  for (const s of names) pos.get(s).y = [y0, y1, y2][row.get(s)];

  // Ports: the ends on one side of a state are spread along it, in the
  // order of where their other ends are, so that they do not cross there.
  const ends = new Map(); // "state|top" -> [{p, end, key}]
  const addEnd = (s, face, p, end, key) => {
    const k = s + '|' + face;
    if (!ends.has(k)) ends.set(k, []);
    ends.get(k).push({ p, end, key });
  };
  for (const p of pairs.values()) {
    const k = kindOf(p), ra = row.get(p.from), rb = row.get(p.to);
    if (k === 'loop-above') addEnd(p.from, 'top', p, 'both', cx(p.from));
    else if (k === 'loop-below') addEnd(p.from, 'bottom', p, 'both', cx(p.from));
    else if (k === 'arc-above') {
      addEnd(p.from, 'top', p, 'from', cx(p.to));
      addEnd(p.to, 'top', p, 'to', cx(p.from));
    } else if (k === 'arc-below') {
      addEnd(p.from, 'bottom', p, 'from', cx(p.to));
      addEnd(p.to, 'bottom', p, 'to', cx(p.from));
    } else if (k === 'across') {
      addEnd(p.from, ra < rb ? 'bottom' : 'top', p, 'from', cx(p.to));
      addEnd(p.to, ra < rb ? 'top' : 'bottom', p, 'to', cx(p.from));
    }
  }
  const port = new Map(); // pair key + end -> {x, y}
  for (const [k, list] of ends) {
    const [s, face] = k.split('|');
    const b = pos.get(s);
    list.sort((a, c) => a.key - c.key || (a.p.key < c.p.key ? -1 : a.p.key > c.p.key ? 1 : 0));
    list.forEach((e, i) => port.set(e.p.key + '|' + e.end,
      { x: b.x + b.w * (i + 1) / (list.length + 1), y: face === 'top' ? b.y : b.y + H }));
  }

  // Each edge as one cubic Bézier.
  for (const p of pairs.values()) {
    const k = kindOf(p), a = pos.get(p.from), b = pos.get(p.to);
    let c;
    if (k === 'loop-above' || k === 'loop-below') {
      const q = port.get(p.key + '|both'), dir = k === 'loop-above' ? -1 : 1;
      const h = LOOP * 4 / 3 * dir;
      c = [{ x: q.x - 7, y: q.y }, { x: q.x - 17, y: q.y + h }, { x: q.x + 17, y: q.y + h }, { x: q.x + 7, y: q.y }];
    } else if (k === 'beside') {
      const rightward = a.x < b.x;
      const dy = pairs.has(p.to + '>' + p.from) ? (rightward ? -5 : 5) : 0;
      const y = a.y + H / 2 + dy;
      const x1 = rightward ? a.x + a.w : a.x, x2 = rightward ? b.x : b.x + b.w;
      c = [{ x: x1, y }, { x: x1 + (x2 - x1) / 3, y }, { x: x1 + 2 * (x2 - x1) / 3, y }, { x: x2, y }];
    } else if (k === 'arc-above' || k === 'arc-below') {
      const q1 = port.get(p.key + '|from'), q2 = port.get(p.key + '|to');
      const h = arcH(p) * 4 / 3 * (k === 'arc-above' ? -1 : 1);
      c = [q1, { x: q1.x, y: q1.y + h }, { x: q2.x, y: q2.y + h }, q2];
    } else {
      const q1 = port.get(p.key + '|from'), q2 = port.get(p.key + '|to');
      const my = (q1.y + q2.y) / 2;
      c = [q1, { x: q1.x, y: my }, { x: q2.x, y: my }, q2];
    }
    p.kind = k;
    p.curve = c;
    p.length = curveLength(c);
  }

  // Labels, the loops' first (they have the least room), then the
  // shortest edges'.
  const boxes = names.map(s => grow({ x: pos.get(s).x, y: pos.get(s).y, w: pos.get(s).w, h: H }, CLEAR + 1));
  const placed = [];
  const list = [...pairs.values()].sort((a, b) =>
    (b.kind.startsWith('loop') - a.kind.startsWith('loop')) || a.length - b.length);
  for (const p of list) {
    const lm = measure('label', p.label);
    const om = p.order === null ? null : measure('order', p.order);
    const bw = Math.max(lm.w, om ? om.w : 0), bh = lm.h + (om ? om.h : 0);
    const ts = p.kind.startsWith('loop') ? [0.5] : [0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.12, 0.88];
    const out = p.kind === 'loop-below' || p.kind === 'arc-below' ? 1 : -1;
    const shifts = p.kind.startsWith('loop')
      ? [[0, out * (bh / 2 + CLEAR)], [0, out * (bh * 1.5 + 2 * CLEAR)], [bw / 2 + LOOP, out * (bh / 2)],
        [-bw / 2 - LOOP, out * (bh / 2)], [0, out * (bh * 2.5 + 3 * CLEAR)]]
      : [[0, 0], [0, -(bh / 2 + CLEAR + 1)], [0, bh / 2 + CLEAR + 1], [bw / 2 + CLEAR + 1, 0],
        [-(bw / 2 + CLEAR + 1), 0], [0, -(bh + CLEAR)], [0, bh + CLEAR]];
    let best = null;
    for (const [sx, sy] of shifts) {
      for (const t of ts) {
        const q = at(p.curve, t);
        const r = { x: q.x + sx - bw / 2, y: q.y + sy - bh / 2, w: bw, h: bh };
        let cost = 0;
        for (const o of boxes) cost += overlap(r, o);
        for (const o of placed) cost += overlap(r, o);
        if (!best || cost < best.cost) best = { r, cost };
        if (cost === 0) break;
      }
      if (best.cost === 0) break;
    }
    placed.push(grow(best.r, CLEAR));
    const r = best.r;
    // The text's y is where its box starts, less where the box starts
    // from the text's y.
    p.labelAt = { x: r.x + r.w / 2, y: r.y + r.h - lm.h - lm.top };
    p.orderAt = om ? { x: r.x + r.w / 2, y: r.y - om.top } : null;
    p.box = r;
  }

  // The canvas: everything drawn, with a margin.
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  const take = (x1, y1, x2, y2) => {
    minX = Math.min(minX, x1); minY = Math.min(minY, y1);
    maxX = Math.max(maxX, x2); maxY = Math.max(maxY, y2);
  };
  for (const s of names) take(pos.get(s).x, pos.get(s).y, pos.get(s).x + pos.get(s).w, pos.get(s).y + H);
  for (const p of pairs.values()) {
    take(p.box.x, p.box.y, p.box.x + p.box.w, p.box.y + p.box.h);
    for (let i = 0; i <= 8; i++) {
      const q = at(p.curve, i / 8);
      take(q.x, q.y, q.x, q.y);
    }
  }
  const view = { x: minX - 10, y: minY - 10, w: maxX - minX + 20, h: maxY - minY + 20 };
  return { pos, pairs, finals, view, row };
}

// A measure() that asks the browser: the texts drawn with the style
// sheet's classes, in the chart, then taken out.
function measurer(svg) {
  const cache = new Map();
  const edge = el('g', { class: 'edge taken' }, svg);
  const node = el('g', { class: 'node' }, svg);
  const m = (kind, s) => {
    const k = kind + '\u0000' + s;
    if (cache.has(k)) return cache.get(k);
    const t = el('text', kind === 'order' ? { x: 0, y: 0, class: 'order' } : { x: 0, y: 0 },
      kind === 'state' ? node : edge);
    t.textContent = s;
    const b = t.getBBox();
    t.remove();
    const r = b.width > 0 ? { w: b.width, h: b.height, top: b.y } : estimate(kind, s);
    cache.set(k, r);
    return r;
  };
  m.done = () => { edge.remove(); node.remove(); };
  return m;
}

const fmt = n => Math.round(n * 10) / 10;

// Draws into parent; steps is GET /tickets/{id}/steps (or []) in order.
// The parent must be shown: the labels are measured as drawn.
export function draw(parent, machine, steps) {
  const svg = el('svg', { role: 'img', 'aria-label': 'the lifecycle and this ticket\'s path' });
  parent.replaceChildren(svg);
  const measure = measurer(svg);
  const L = layout(machine, steps, measure);
  measure.done();
  const v = L.view;
  svg.setAttribute('viewBox', `${fmt(v.x)} ${fmt(v.y)} ${fmt(v.w)} ${fmt(v.h)}`);
  svg.setAttribute('width', Math.ceil(v.w));
  svg.setAttribute('height', Math.ceil(v.h));
  const visited = new Set(steps.flatMap(s => [s.step.from, s.step.to]));
  const current = steps.length ? steps[steps.length - 1].step.to : null;
  const defs = el('defs', {}, svg);
  const mk = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' }, defs);
  el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8a94a6' }, mk);
  // The lines first, then the labels over them, then the states.
  const lines = el('g', { class: 'lines' }, svg);
  const labels = el('g', { class: 'labels' }, svg);
  for (const p of L.pairs.values()) {
    const attrs = { class: 'edge' + (p.taken ? ' taken' : ''), 'data-from': p.from, 'data-to': p.to };
    const c = p.curve;
    el('path', {
      d: `M${fmt(c[0].x)},${fmt(c[0].y)} C${fmt(c[1].x)},${fmt(c[1].y)} ${fmt(c[2].x)},${fmt(c[2].y)} ${fmt(c[3].x)},${fmt(c[3].y)}`,
      'marker-end': 'url(#arrow)',
    }, el('g', attrs, lines));
    const g = el('g', attrs, labels);
    el('text', { x: fmt(p.labelAt.x), y: fmt(p.labelAt.y) }, g).textContent = p.label;
    if (p.orderAt)
      el('text', { class: 'order', x: fmt(p.orderAt.x), y: fmt(p.orderAt.y) }, g).textContent = p.order;
  }
  for (const [s, p] of L.pos) {
    const cls = ['node'];
    if (visited.has(s)) cls.push('visited');
    if (s === current) cls.push('current');
    if (L.finals.has(s)) cls.push('final');
    const g = el('g', { class: cls.join(' '), 'data-state': s, 'data-row': ['other', 'line', 'side'][L.row.get(s)] }, svg);
    el('rect', { x: fmt(p.x), y: fmt(p.y), width: fmt(p.w), height: H, rx: 6 }, g);
    el('text', { x: fmt(p.x + p.w / 2), y: fmt(p.y + H / 2) }, g).textContent = s;
  }
  return svg;
}
