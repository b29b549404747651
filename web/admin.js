// nerve cluster admin page (project issue 8): polls GET /api/admin/cluster
// every second with the API key as a bearer token, derives per-second rates
// from the nodes' monotonic counters, and draws them with uPlot (the global
// `uPlot`, served at /uPlot.iife.min.js from the uplot package).
/* global uPlot */
'use strict';

const POLL_MS = 1000;
const HISTORY = 120; // samples kept for the chart (two minutes)
const KEY_STORAGE = 'nerve-admin-key';
const SERIES = [
  { id: 'signal', label: 'signal (hot)', color: '--signal', pick: (c) => c.messagesIn.signal ?? 0 },
  { id: 'ephemeral', label: 'ephemeral (hot)', color: '--ephemeral', pick: (c) => c.messagesIn.ephemeral ?? 0 },
  { id: 'chat', label: 'chat (hot + history)', color: '--chat', pick: (c) => c.messagesIn.chat ?? 0 },
  { id: 'cold', label: 'events (cold lane)', color: '--cold', pick: (c) => c.eventsPublished ?? 0, dash: [6, 4] },
];

const $ = (id) => document.getElementById(id);
let key = sessionStorage.getItem(KEY_STORAGE) ?? '';
let timer;
/** node id → { at, counters } of the previous poll, for per-node rates. */
const previous = new Map();
/** Cluster-wide rate samples: { at, values: { seriesId: perSecond } }. */
const samples = [];
let lastTotals;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === 'class') node.className = value;
    else if (name.startsWith('data-')) node.setAttribute(name, value);
    else node[name] = value;
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

const fmt = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });
const sum = (record) => Object.values(record ?? {}).reduce((a, b) => a + b, 0);
function duration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function setLive(state, text) {
  const badge = $('live');
  badge.dataset.state = state;
  badge.textContent = text;
}

function showLogin(message) {
  clearTimeout(timer);
  $('dashboard').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message ?? '';
  setLive('idle', 'not connected');
}

async function poll() {
  clearTimeout(timer);
  try {
    const response = await fetch('/api/admin/cluster', { headers: { authorization: `Bearer ${key}` }, cache: 'no-store' });
    if (response.status === 401 || response.status === 403 || response.status === 404) {
      const body = await response.json().catch(() => ({}));
      sessionStorage.removeItem(KEY_STORAGE);
      showLogin(body.message ?? `refused (${response.status})`);
      return;
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    render(await response.json());
    setLive('live', 'live');
  } catch (error) {
    setLive('error', `unreachable: ${error.message}`);
  }
  timer = setTimeout(poll, POLL_MS);
}

function render(view) {
  $('login').hidden = true;
  $('dashboard').hidden = false;
  $('logout').hidden = false;
  $('answered-by').textContent = `answered by ${view.self}`;
  const nodes = view.nodes;
  const now = Date.now();

  // Cluster totals and the chart sample.
  const totals = Object.fromEntries(SERIES.map((s) => [s.id, nodes.reduce((acc, n) => acc + s.pick(n.counters), 0)]));
  const totalIds = nodes
    .map((n) => n.id)
    .sort()
    .join(',');
  if (lastTotals && lastTotals.ids === totalIds) {
    const dt = (now - lastTotals.at) / 1000;
    if (dt > 0) {
      const values = {};
      for (const s of SERIES) values[s.id] = Math.max(0, (totals[s.id] - lastTotals.values[s.id]) / dt);
      samples.push({ at: now, values });
      while (samples.length > HISTORY) samples.shift();
    }
  }
  lastTotals = { at: now, ids: totalIds, values: totals };

  const draining = nodes.filter((n) => n.state === 'draining').length;
  $('t-nodes').textContent = nodes.length;
  $('t-nodes-sub').textContent = draining ? `${draining} draining` : `registry: ${view.registry}`;
  $('t-conns').textContent = fmt.format(sum(Object.fromEntries(nodes.map((n) => [n.id, n.connections]))));
  $('t-rooms').textContent = fmt.format(nodes.reduce((a, n) => a + n.rooms, 0));
  $('t-errors').textContent = fmt.format(nodes.reduce((a, n) => a + n.counters.errors, 0));

  // Per-node rows with per-node rates.
  const rows = [];
  let inRate = 0;
  let outRate = 0;
  for (const node of nodes) {
    const before = previous.get(node.id);
    const inTotal = sum(node.counters.messagesIn);
    const outTotal = sum(node.counters.deliveries);
    let rIn = before?.rIn ?? 0;
    let rOut = before?.rOut ?? 0;
    // Remote entries change once per heartbeat: a rate is taken only when the counters moved or enough time passed.
    if (before && (inTotal !== before.inTotal || outTotal !== before.outTotal || now - before.at > 5000)) {
      const dt = (now - before.at) / 1000;
      rIn = Math.max(0, (inTotal - before.inTotal) / dt);
      rOut = Math.max(0, (outTotal - before.outTotal) / dt);
    }
    if (!before || inTotal !== before.inTotal || outTotal !== before.outTotal || now - before.at > 5000) {
      previous.set(node.id, { at: now, inTotal, outTotal, rIn, rOut });
    }
    inRate += rIn;
    outRate += rOut;
    const lanes = el(
      'div',
      { class: 'dots' },
      ...node.lanes.map((lane) => el('span', { class: lane.ok ? 'dot' : 'dot down', title: lane.detail ?? `${lane.lane}: ${lane.driver}` }, lane.lane)),
    );
    const stale = node.heartbeatAgeMs > node.ttlMs / 2 && node.id !== view.self;
    rows.push(
      el(
        'tr',
        { class: [node.id === view.self ? 'self' : '', stale ? 'stale' : ''].join(' '), 'data-testid': 'node-row', 'data-node': node.id },
        el('td', {}, el('strong', {}, node.id)),
        el('td', { class: 'muted' }, node.address),
        el('td', {}, el('span', { class: `state ${node.state}` }, node.state)),
        el('td', { class: 'num', 'data-testid': 'node-connections' }, fmt.format(node.connections)),
        el('td', { class: 'num', 'data-testid': 'node-rooms' }, fmt.format(node.rooms)),
        el('td', { class: 'num' }, fmt.format(rIn)),
        el('td', { class: 'num' }, fmt.format(rOut)),
        el('td', { class: 'num' }, fmt.format(node.counters.drops)),
        el('td', {}, lanes),
        el('td', { class: 'muted' }, node.version),
        el('td', { class: 'num' }, duration(view.now - node.startedAt)),
        el('td', { class: 'num muted' }, node.id === view.self ? 'now' : `${duration(node.heartbeatAgeMs)} ago`),
      ),
    );
  }
  for (const id of previous.keys()) if (!nodes.some((n) => n.id === id)) previous.delete(id);
  $('node-rows').replaceChildren(...rows);
  $('t-in').textContent = fmt.format(inRate);
  $('t-out').textContent = fmt.format(outRate);
  $('registry-note').textContent = view.registryError
    ? `Registry unreachable (${view.registryError}): showing this node only.`
    : view.registry === 'memory'
      ? 'Single node (in-memory registry). Start nodes with --redis-url to see a cluster.'
      : 'Nodes announce themselves in Redis every heartbeat; one that misses three drops out.';

  renderLanes(nodes);
  renderErrors(nodes);
  renderChart();
}

function renderLanes(nodes) {
  const byLane = new Map();
  for (const node of nodes)
    for (const lane of node.lanes) {
      if (!byLane.has(lane.lane)) byLane.set(lane.lane, []);
      byLane.get(lane.lane).push({ node: node.id, ...lane });
    }
  $('lanes').replaceChildren(
    ...[...byLane].map(([lane, entries]) => {
      const down = entries.filter((e) => !e.ok);
      const drivers = [...new Set(entries.map((e) => e.driver))].join(', ');
      return el(
        'div',
        { class: 'lane-row', 'data-lane': lane },
        el('span', { class: 'lane-name' }, lane),
        el('span', { class: 'muted' }, drivers),
        el('span', { class: down.length ? 'dot down' : 'dot' }, `${entries.length - down.length}/${entries.length} up`),
        ...down.map((e) => el('span', { class: 'lane-detail' }, `${e.node}: ${e.detail ?? 'down'}`)),
      );
    }),
  );
}

function renderErrors(nodes) {
  const all = nodes
    .flatMap((node) => node.errors.map((e) => ({ ...e, node: node.id })))
    .sort((a, b) => b.ts - a.ts)
    .slice(0, 30);
  if (all.length === 0) {
    $('errors').replaceChildren(el('li', { class: 'empty' }, 'No errors recorded.'));
    return;
  }
  $('errors').replaceChildren(
    ...all.map((e) =>
      el(
        'li',
        {},
        el('span', { class: 'muted' }, new Date(e.ts).toLocaleTimeString()),
        el('span', {}, e.node),
        el('span', {}, el('span', { class: 'code' }, e.code), e.detail ? ` — ${e.detail}` : ''),
        el('span', { class: 'muted' }, e.count > 1 ? `×${e.count}` : ''),
      ),
    ),
  );
}

/** The uPlot instance, made at the first sample: the dashboard must be visible for its width. */
let chart;

function makeChart(box) {
  // A canvas cannot read CSS variables: the page's colours are resolved once.
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  const axis = { stroke: color('--muted'), grid: { stroke: '#e9ebf2' }, ticks: { stroke: '#e9ebf2' } };
  return new uPlot(
    {
      width: box.clientWidth,
      height: 220,
      legend: { show: false },
      cursor: { y: false },
      scales: {
        // Two minutes ending at the newest sample, as the page keeps them.
        x: { time: true, range: (u, min, max) => [(max ?? Date.now() / 1000) - (HISTORY * POLL_MS) / 1000, max ?? Date.now() / 1000] },
        y: { range: (u, min, max) => uPlot.rangeNum(0, Math.max(1, max), 0.1, true) },
      },
      axes: [axis, { ...axis, size: 56, values: (u, ticks) => ticks.map((v) => fmt.format(v)) }],
      series: [
        {},
        ...SERIES.map((s) => ({ label: s.label, stroke: color(s.color), fill: `${color(s.color)}12`, width: 2, dash: s.dash, points: { show: false } })),
      ],
    },
    [[], ...SERIES.map(() => [])],
    box,
  );
}

function renderChart() {
  const box = $('chart');
  chart ??= makeChart(box);
  if (chart.width !== box.clientWidth && box.clientWidth > 0) chart.setSize({ width: box.clientWidth, height: 220 });
  chart.setData([samples.map((sample) => sample.at / 1000), ...SERIES.map((s) => samples.map((sample) => sample.values[s.id]))]);
  box.dataset.samples = String(samples.length);
  const last = samples[samples.length - 1]?.values ?? {};
  $('legend').replaceChildren(
    ...SERIES.map((s) => el('span', {}, Object.assign(el('i'), { style: `background: var(${s.color})` }), `${s.label} ${fmt.format(last[s.id] ?? 0)}/s`)),
  );
}

// The actions (disconnect, end a room, publish, quotas, usage): admin-actions.js.
window.NerveAdminActions.setup({ el, fmt, key: () => key });

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  key = $('key').value.trim();
  sessionStorage.setItem(KEY_STORAGE, key);
  $('login-error').textContent = '';
  void poll();
});
$('logout').addEventListener('click', () => {
  key = '';
  sessionStorage.removeItem(KEY_STORAGE);
  showLogin();
});

if (key) void poll();
else showLogin();
