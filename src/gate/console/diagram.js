// diagram.js - the machine's chart, laid out here from GET /machine (the
// compiled machine, not a drawing), with a ticket's path drawn on it.
//
// Layout: the states entered only by the side events (no_show, cancel,
// move) go in the row below; the longest path from the first state over
// the others (back edges and self-loops left out) is the happy path, in
// one line; the rest of those sit above it.  Each side state stands under
// the mean column of its neighbours on the line, so that the edges to and
// from it stay between the line and that row and never cross the chart.
// The states and edges are all the machine's; only these three event
// names are the console's, to say which way is the side.
const SIDE_EVENTS = new Set(['no_show', 'cancel', 'move']);
const SVG = 'http://www.w3.org/2000/svg';
const W = 118, H = 34, GAPX = 34, ROWY = [40, 150, 260];

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

// {states: [{state, final, next: {event: to}}]} -> positions and edges.
export function layout(machine) {
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
  const spine = longest(start);
  const col = new Map(spine.map((s, i) => [s, i]));
  const pos = new Map();
  const at = (c, row) => ({ x: 10 + c * (W + GAPX), y: ROWY[row] });
  spine.forEach((s, i) => pos.set(s, at(i, 1)));
  const used = new Set();
  const place = (s, row) => {
    const near = edges.filter(e => (e.from === s && col.has(e.to)) || (e.to === s && col.has(e.from)))
      .map(e => col.get(e.from === s ? e.to : e.from));
    let c = near.length ? Math.round(near.reduce((a, b) => a + b, 0) / near.length) : 0;
    for (let d = 0; used.has(row + ':' + c); d++) c += d % 2 ? -d : d; // nearest free
    used.add(row + ':' + c);
    pos.set(s, at(Math.max(0, c), row));
  };
  for (const s of names) if (side.has(s)) place(s, 2);
  for (const s of names) if (!pos.has(s)) place(s, 0);
  const width = 20 + Math.max(...[...pos.values()].map(p => p.x)) + W;
  return { pos, edges, finals, width, height: ROWY[2] + H + 70 };
}

// The path of an edge from a to b: straight along a row, bent otherwise;
// bent below for edges into the lowest row, above for the others.
function edgePath(a, b, lift) {
  const ax = a.x + W / 2, bx = b.x + W / 2;
  if (a === b) {
    const x = a.x + W / 2, y = a.y;
    return { d: `M${x - 12},${y} C${x - 24},${y - 34} ${x + 24},${y - 34} ${x + 12},${y}`, lx: x, ly: y - 28 };
  }
  if (a.y === b.y && Math.abs(ax - bx) <= W + GAPX + 1) {
    const [x1, x2] = ax < bx ? [a.x + W, b.x] : [a.x, b.x + W];
    const y = a.y + H / 2 + lift;
    return { d: `M${x1},${y} L${x2},${y}`, lx: (x1 + x2) / 2, ly: y - 4 };
  }
  const down = b.y > a.y || (a.y === b.y && b.y >= ROWY[2]);
  const y1 = down ? a.y + H : a.y, y2 = down ? (b.y > a.y ? b.y : b.y + H) : (b.y < a.y ? b.y + H : b.y);
  const bend = a.y === b.y ? (down ? 60 : -60) : 0;
  const mx = (ax + bx) / 2 + lift, my = (y1 + y2) / 2 + bend;
  return { d: `M${ax + lift},${y1} Q${mx},${my} ${bx + lift},${y2}`, lx: mx, ly: (y1 + y2) / 2 + bend / 2 };
}

// Draws into parent; steps is GET /tickets/{id}/steps (or []) in order.
export function draw(parent, machine, steps) {
  const L = layout(machine);
  const svg = el('svg', { viewBox: `0 0 ${L.width} ${L.height}`, width: L.width, height: L.height, role: 'img', 'aria-label': 'the lifecycle and this ticket\'s path' });
  const taken = new Map(); // "from>to" -> [order numbers]
  steps.forEach((s, i) => {
    const k = s.step.from + '>' + s.step.to;
    if (!taken.has(k)) taken.set(k, []);
    taken.get(k).push(i + 1);
  });
  const visited = new Set(steps.flatMap(s => [s.step.from, s.step.to]));
  const current = steps.length ? steps[steps.length - 1].step.to : null;
  // One line per pair of states, naming all its events.
  const pairs = new Map();
  for (const e of L.edges) {
    const k = e.from + '>' + e.to;
    if (!pairs.has(k)) pairs.set(k, { from: e.from, to: e.to, evs: [] });
    pairs.get(k).evs.push(e.ev);
  }
  const defs = el('defs', {}, svg);
  const mk = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 6, markerHeight: 6, orient: 'auto-start-reverse' }, defs);
  el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8a94a6' }, mk);
  for (const p of pairs.values()) {
    const k = p.from + '>' + p.to;
    const rev = pairs.has(p.to + '>' + p.from) && p.from !== p.to;
    const a = L.pos.get(p.from), b = L.pos.get(p.to);
    const g = el('g', { class: 'edge' + (taken.has(k) ? ' taken' : ''), 'data-from': p.from, 'data-to': p.to }, svg);
    const ep = edgePath(a, b, rev ? (a.x < b.x || (a.x === b.x && a.y < b.y) ? -6 : 6) : 0);
    el('path', { d: ep.d, 'marker-end': 'url(#arrow)' }, g);
    const label = el('text', { x: ep.lx, y: ep.ly }, g);
    label.textContent = p.evs.join(', ');
    if (taken.has(k)) {
      const o = el('text', { class: 'order', x: ep.lx, y: ep.ly - 11 }, g);
      o.textContent = taken.get(k).join(',');
    }
  }
  for (const [s, p] of L.pos) {
    const cls = ['node'];
    if (visited.has(s)) cls.push('visited');
    if (s === current) cls.push('current');
    if (L.finals.has(s)) cls.push('final');
    const g = el('g', { class: cls.join(' '), 'data-state': s }, svg);
    el('rect', { x: p.x, y: p.y, width: W, height: H, rx: 6 }, g);
    const t = el('text', { x: p.x + W / 2, y: p.y + H / 2 }, g);
    t.textContent = s;
  }
  parent.replaceChildren(svg);
  return svg;
}
