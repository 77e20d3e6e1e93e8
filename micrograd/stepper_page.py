"""The stepper's web page: HTML, CSS and the script that plays the recorded steps.

One template, filled by micrograd/stepper.py: {{title}} (escaped text), {{svg}} (Graphviz's
picture) and {{data}} (JSON, with '<' escaped so no text can close the script). The script
knows nothing of ops or numbers: Python recorded every line and value; the script only shows
step k by replaying the recorded changes 0..k and marking boxes and arrows by their SVG titles.
"""

PAGE = r'''<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{title}}</title>
<style>
  body { font-family: Helvetica, Arial, sans-serif; margin: 0; color: #222; }
  header { padding: 8px 14px; background: #f4f4f4; border-bottom: 1px solid #ddd; }
  h1 { font-size: 17px; margin: 0 0 6px 0; }
  .controls { display: flex; align-items: center; gap: 10px; }
  .controls input[type=range] { flex: 1; }
  #counter { font-variant-numeric: tabular-nums; min-width: 15em; }
  #lines { font-family: Menlo, Consolas, monospace; font-size: 14px; margin: 6px 0 0 0;
           padding: 6px 10px; background: white; border-left: 4px solid #999;
           height: 5.6em; overflow: auto; white-space: pre-wrap; }   /* no jumps */
  body.forward #lines { border-left-color: #1f77b4; }
  body.backward #lines { border-left-color: #d62728; }
  main { display: flex; height: calc(100vh - 175px); }
  #graph { flex: 1; overflow: auto; padding: 6px; }
  #graph.fit svg { max-width: 100%; height: auto; }
  aside { width: 480px; overflow: auto; border-left: 1px solid #ddd; font-size: 11px; }
  table { border-collapse: collapse; width: 100%; }
  th, td { padding: 1px 4px; text-align: right; font-family: Menlo, Consolas, monospace;
           white-space: nowrap; }
  th { position: sticky; top: 0; background: #f4f4f4; }
  td:first-child, th:first-child { text-align: left; }
  tr.current { background: #ffe9a8; }
  tr.operand { background: #fff6d6; }
  g.node.current polygon, g.node.current path, g.node.current ellipse
    { stroke: #d62728; stroke-width: 4; }
  body.forward g.node.current polygon, body.forward g.node.current path,
  body.forward g.node.current ellipse { stroke: #1f77b4; }
  g.node.operand polygon, g.node.operand path { stroke: #ff9f1c; stroke-width: 3; }
  g.edge.used path { stroke: #d62728; stroke-width: 3; }
  g.edge.used polygon { stroke: #d62728; fill: #d62728; }
  body.forward g.edge.used path { stroke: #1f77b4; }
  body.forward g.edge.used polygon { stroke: #1f77b4; fill: #1f77b4; }
  .help { color: #666; font-size: 12px; }
</style>
</head>
<body>
<header>
  <h1>{{title}}</h1>
  <div class="controls">
    <button id="prev" title="previous step (left arrow)">&larr;</button>
    <input id="slider" type="range" min="0" value="0" aria-label="step">
    <button id="next" title="next step (right arrow)">&rarr;</button>
    <span id="counter"></span>
    <label class="help"><input id="fit" type="checkbox"> fit picture</label>
  </div>
  <div id="lines"></div>
</header>
<main>
  <div id="graph">{{svg}}</div>
  <aside>
    <table>
      <thead><tr><th>value</th><th>data</th><th>grad</th></tr></thead>
      <tbody id="values"></tbody>
    </table>
  </aside>
</main>
<script>
"use strict";
const DATA = {{data}};
const last = DATA.steps.length - 1;
const slider = document.getElementById('slider');
slider.max = last;

// The picture's parts by their <title>: boxes 'v3', op ellipses 'v3op', arrows 'v1->v3op'.
const svgNodes = {}, svgEdges = {};
for (const g of document.querySelectorAll('#graph g.node')) {
  svgNodes[g.querySelector('title').textContent] = g;
}
for (const g of document.querySelectorAll('#graph g.edge')) {
  const title = g.querySelector('title').textContent;
  (svgEdges[title] = svgEdges[title] || []).push(g);
}
// The 'data ...' and 'grad ...' texts of the box each node owns (a collapsed neuron's box
// belongs to its output).
const boxTexts = DATA.nodes.map((node, i) => {
  const g = node.box === 'v' + i ? svgNodes[node.box] : null;
  const texts = {};
  if (g) {
    for (const t of g.querySelectorAll('text')) {
      const field = t.textContent.split(' ')[0];
      if (field === 'data' || field === 'grad') texts[field] = t;
    }
  }
  return texts;
});

const rows = DATA.nodes.map((node) => {
  const tr = document.createElement('tr');
  tr.dataset.name = node.name;
  for (const text of [node.name, '', '']) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.appendChild(td);
  }
  document.getElementById('values').appendChild(tr);
  return tr;
});

function stateAt(k) {
  const state = DATA.nodes.map(() => ({data: null, grad: null}));
  for (let s = 0; s <= k; s++) {
    for (const [i, field, exact, short] of DATA.steps[s].changes) {
      state[i][field] = {exact, short};
    }
  }
  return state;
}

function mark(i, cls) {
  const node = DATA.nodes[i];
  for (const id of [node.box, node.op]) {
    if (id && svgNodes[id]) svgNodes[id].classList.add(cls);
  }
  rows[i].classList.add(cls);
}

let current = 0;
function show(k) {
  current = Math.max(0, Math.min(last, k));
  const step = DATA.steps[current];
  const state = stateAt(current);
  document.body.className = step.phase;
  for (const el of document.querySelectorAll('.current, .operand, .used')) {
    el.classList.remove('current', 'operand', 'used');
  }
  state.forEach((values, i) => {
    for (const field of ['data', 'grad']) {
      const shown = values[field];
      rows[i].children[field === 'data' ? 1 : 2].textContent = shown ? shown.exact : '';
      if (boxTexts[i][field]) boxTexts[i][field].textContent = field + ' ' + (shown ? shown.short : '?');
    }
  });
  if (step.node !== null) {
    const node = DATA.nodes[step.node];
    for (const a of node.args) mark(a, 'operand');
    mark(step.node, 'current');
    for (const title of node.edges) {
      for (const g of svgEdges[title] || []) g.classList.add('used');
    }
    rows[step.node].scrollIntoView({block: 'nearest'});
    svgNodes[node.box].scrollIntoView({block: 'center', inline: 'center'});
  }
  document.getElementById('lines').textContent = step.lines.join('\n');
  const phase = step.phase === 'start' ? 'start' : step.phase + ' pass';
  document.getElementById('counter').textContent = `step ${current} / ${last} \u00b7 ${phase}`;
  slider.value = current;
}

document.addEventListener('keydown', (event) => {
  const moves = {ArrowLeft: current - 1, ArrowRight: current + 1, Home: 0, End: last};
  if (event.key in moves) {
    event.preventDefault();        // a focused slider would otherwise move a second time
    show(moves[event.key]);
  }
});
slider.addEventListener('input', () => show(Number(slider.value)));
document.getElementById('prev').addEventListener('click', () => show(current - 1));
document.getElementById('next').addEventListener('click', () => show(current + 1));
document.getElementById('fit').addEventListener('change', (event) => {
  document.getElementById('graph').classList.toggle('fit', event.target.checked);
});
show(0);
</script>
</body>
</html>
'''
