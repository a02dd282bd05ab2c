// meshdsl dashboard: one graph, updated in place from server-sent events.
(function () {
  "use strict";
  const COLOUR = { healthy: "#16a34a", degraded: "#f59e0b", failure: "#dc2626", none: "#9ca3af" };
  const KIND_SHAPE = { gateway: "diamond", service: "triangle", workload: "round-rectangle", unknown: "ellipse" };
  // renderMs: the last few updates' cost in the page (read by bench/dashboard.py)
  const state = { snapshot: null, selected: null, renderMs: [], layoutMs: null };
  window.meshdsl = state;

  const cy = cytoscape({
    container: document.getElementById("graph"),
    wheelSensitivity: 0.3, maxZoom: 1.6, textureOnViewport: true, hideEdgesOnViewport: true,
    style: [
      { selector: "node", style: {
        "label": "data(label)", "font-size": 10, "text-valign": "bottom", "text-margin-y": 3,
        "min-zoomed-font-size": 6,
        "background-color": "#fff", "border-width": 3, "border-color": "data(colour)",
        "shape": "data(shape)", "width": 26, "height": 26 } },
      { selector: "node[kind = 'namespace']", style: {
        "shape": "round-rectangle", "background-color": "#f8fafc", "border-width": 1,
        "border-color": "#cbd5e1", "text-valign": "top", "font-size": 12, "color": "#475569" } },
      { selector: "node[?canary]", style: { "background-color": "#ede9fe" } },
      { selector: "edge", style: {
        "curve-style": "bezier", "target-arrow-shape": "triangle", "width": "data(width)",
        "line-color": "data(colour)", "target-arrow-color": "data(colour)",
        "label": "data(text)", "font-size": 8, "text-rotation": "autorotate",
        "min-zoomed-font-size": 7,
        "text-background-color": "#fff", "text-background-opacity": 0.8 } },
      { selector: "edge[state = 'idle']", style: { "line-style": "dashed", "width": 1 } },
      { selector: "edge[?undeclared]", style: { "line-style": "dotted" } },
      { selector: ":selected", style: { "overlay-color": "#2563eb", "overlay-opacity": 0.15 } },
    ],
  });
  window.cy = cy;

  const fmt = (v, digits) => (v === null || v === undefined) ? "–" : Number(v).toFixed(digits);

  function edgeText(e) {
    if (e.rps <= 0) return e.weight !== null ? e.weight + "%" : "";
    let t = fmt(e.rps, 1) + " rps";
    if (e.error_pct) t += " " + fmt(e.error_pct, 1) + "% err";
    if (e.p99_ms !== null) t += " p99 " + fmt(e.p99_ms, 0) + "ms";
    if (e.mtls) t += " mTLS";
    if (e.weight !== null) t = e.weight + "% · " + t;
    return t;
  }

  function nodeData(n) {
    const d = Object.assign({}, n);
    d.colour = COLOUR[n.health || "none"];
    d.shape = KIND_SHAPE[n.kind] || "ellipse";
    if (n.kind === "namespace") delete d.parent;
    if (n.canary) d.label = n.label + " [" + n.canary.stage + "]";
    return d;
  }

  function edgeData(e) {
    const d = Object.assign({}, e);
    d.colour = COLOUR[e.health];
    d.text = edgeText(e);
    d.width = e.rps > 0 ? Math.min(8, 1.5 + Math.log10(1 + e.rps) * 2) : 1;
    return d;
  }

  // dagre reads best but grows superlinearly; past this many nodes each namespace is laid
  // out as rows (gateways | services | their versions), the namespaces side by side.
  const DAGRE_LIMIT = 150;

  function gridPositions() {
    const pos = {}, byNs = {};
    cy.nodes().forEach((n) => {
      const d = n.data();
      if (d.kind === "namespace") return;
      (byNs[d.namespace] = byNs[d.namespace] || []).push(d);
    });
    const namespaces = Object.keys(byNs).sort();
    const perRow = Math.max(1, Math.ceil(Math.sqrt(namespaces.length)));
    let x0 = 0, y0 = 0, rowHeight = 0;
    namespaces.forEach((ns, i) => {
      if (i > 0 && i % perRow === 0) { x0 = 0; y0 += rowHeight + 120; rowHeight = 0; }
      const nodes = byNs[ns];
      const services = nodes.filter((d) => d.kind === "service").sort((a, b) => a.id < b.id ? -1 : 1);
      const others = nodes.filter((d) => d.kind !== "service" && d.kind !== "workload");
      let y = y0;
      others.forEach((d) => { pos[d.id] = { x: x0, y: y }; y += 60; });
      y = y0;
      services.forEach((svc) => {
        pos[svc.id] = { x: x0 + 160, y: y };
        const versions = nodes.filter((d) => d.kind === "workload" && d.service === svc.label);
        versions.forEach((w, j) => { pos[w.id] = { x: x0 + 320 + 110 * j, y: y }; });
        y += 60;
      });
      nodes.filter((d) => d.kind === "workload" && !(d.id in pos)).forEach((d) => { pos[d.id] = { x: x0 + 320, y: y }; y += 60; });
      rowHeight = Math.max(rowHeight, y - y0);
      x0 += 320 + 110 * 4 + 120;
    });
    return pos;
  }

  function render(snap) {
    const began = performance.now();
    state.snapshot = snap;
    document.getElementById("title").textContent = snap.title || "meshdsl";
    document.getElementById("mesh").textContent = snap.mesh ? "mesh " + snap.mesh : "";
    document.getElementById("source").textContent = snap.source || "no metrics source";
    const upd = document.getElementById("updated");
    upd.textContent = "updated " + new Date(snap.at * 1000).toLocaleTimeString();
    upd.dataset.seq = snap.seq;
    const added = [];
    cy.batch(() => {
      const want = new Set();
      // namespaces first: a node's parent must exist when the node is added
      const ordered = snap.graph.nodes.filter((n) => n.kind === "namespace")
        .concat(snap.graph.nodes.filter((n) => n.kind !== "namespace"));
      for (const n of ordered) {
        want.add(n.id);
        const el = cy.getElementById(n.id);
        if (el.nonempty()) el.data(nodeData(n));
        else added.push(cy.add({ group: "nodes", data: nodeData(n) }));
      }
      for (const e of snap.graph.edges) {
        want.add(e.id);
        const el = cy.getElementById(e.id);
        if (el.nonempty()) el.data(edgeData(e));
        else added.push(cy.add({ group: "edges", data: edgeData(e) }));
      }
      cy.elements().forEach((el) => { if (!want.has(el.id())) el.remove(); });
    });
    if (added.length) {  // the layout is computed when the set of nodes changes, not per update
      const t = performance.now();
      if (cy.nodes().length <= DAGRE_LIMIT) {
        cy.layout({ name: "dagre", rankDir: "LR", nodeSep: 18, rankSep: 70, animate: false, fit: true }).run();
      } else {
        cy.layout({ name: "preset", positions: gridPositions(), animate: false, fit: true }).run();
      }
      state.layoutMs = performance.now() - t;
    }
    renderEdgeTable(snap.graph.edges);
    renderCanaries(snap.canaries);
    renderHistory(snap.history);
    renderTraceServices(snap.traces, snap.tracing_url);
    document.getElementById("errors").innerHTML = (snap.errors || []).map((e) => "<p>" + esc(e) + "</p>").join("");
    if (state.selected) showDetails(state.selected);
    state.renderMs = state.renderMs.concat([performance.now() - began]).slice(-200);
  }

  function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c])); }

  function renderEdgeTable(edges) {
    const body = document.querySelector("#edges tbody");
    body.innerHTML = edges.map((e) => "<tr data-edge=\"" + esc(e.id) + "\" data-health=\"" + e.health + "\" data-rps=\"" + e.rps + "\">" +
      "<td>" + esc(e.source + " -> " + e.target) + "</td><td>" + fmt(e.rps, 2) + "</td><td>" + fmt(e.error_pct, 1) +
      "</td><td>" + fmt(e.p50_ms, 1) + "</td><td>" + fmt(e.p99_ms, 1) + "</td><td>" + (e.mtls ? "yes" : e.mtls === false ? "no" : "–") +
      "</td><td>" + e.health + "</td><td>" + e.state + "</td></tr>").join("");
  }

  function checkRow(c) {
    const bound = c.min !== null ? "≥ " + fmt(c.min, 1) : c.max !== null ? "≤ " + fmt(c.max, 1) : "";
    return "<tr><td>" + esc(c.name) + "</td><td>" + fmt(c.value, 2) + "</td><td>" + bound +
      "</td><td class=\"" + esc(c.verdict) + "\">" + esc(c.verdict) + "</td></tr>";
  }

  function renderCanaries(list) {
    const box = document.getElementById("canaries");
    if (!list || !list.length) { box.innerHTML = "<p class=\"muted\">no rollouts</p>"; return; }
    box.innerHTML = list.map((c) => {
      const ws = Object.entries(c.weights);
      const bar = ws.map(([v, w], i) => "<div class=\"" + (i === 0 && ws.length > 1 ? "stable" : "target") +
        "\" style=\"width:" + w + "%\">" + (w >= 10 ? esc(v) + " " + w + "%" : "") + "</div>").join("");
      const tl = c.timeline.slice().reverse().map((t) => "<div>" + new Date(t.at * 1000).toLocaleTimeString() +
        " <b>" + esc(t.phase) + "</b> " + esc(t.stage) + ": " + esc(t.message) + "</div>").join("");
      return "<div class=\"canary phase-" + esc(c.phase) + "\" data-service=\"" + esc(c.namespace + "/" + c.service) +
        "\" data-phase=\"" + esc(c.phase) + "\" data-stage=\"" + esc(c.stage) + "\" data-weights='" +
        esc(JSON.stringify(c.weights)) + "'>" +
        "<b>" + esc(c.namespace + "/" + c.service) + "</b> " + esc(c.stable) + " → " + esc(c.target) +
        " <span class=\"phase\">" + esc(c.phase) + "</span> stage <span class=\"stage\">" + esc(c.stage) +
        "</span> (" + (c.stage_index + 1) + "/" + c.stage_count + ")" +
        "<div class=\"bar\">" + bar + "</div><div class=\"weights\">" + esc(c.traffic) + "</div>" +
        "<div class=\"why\">" + esc(c.why) + "</div>" +
        (c.checks.length ? "<table><tr><th>check</th><th>last</th><th>threshold</th><th></th></tr>" +
          c.checks.map(checkRow).join("") + "</table>" : "") +
        "<div>failed checks " + c.failed_checks + "/" + c.max_failed_checks + "</div>" +
        "<div class=\"timeline\">" + tl + "</div></div>";
    }).join("");
  }

  function renderHistory(list) {
    const box = document.getElementById("history");
    if (!list || !list.length) return;
    box.innerHTML = "<table>" + list.map((h) => "<tr><td>" + esc((h.revision || "").slice(0, 12)) + "</td><td>" +
      esc(h.result || "") + "</td><td>" + esc(h.at || "") + "</td><td>" + esc(h.summary || "") + "</td></tr>").join("") + "</table>";
  }

  function renderTraceServices(counts, external) {
    const box = document.getElementById("trace-services");
    const names = Object.keys(counts || {});
    const link = external ? "<p><a id=\"tracing-link\" target=\"_blank\" rel=\"noopener\" href=\"" + esc(external) +
      "\">open the mesh's tracing UI</a></p>" : "";
    box.innerHTML = link + (names.length ? names.map((n) => "<a class=\"trace-service\" data-service=\"" + esc(n) + "\">" +
      esc(n) + " (" + counts[n] + ")</a>").join(" · ") : "<p class=\"muted\">no traces received</p>");
  }

  document.getElementById("trace-services").addEventListener("click", async (ev) => {
    const s = ev.target.dataset.service; if (!s) return;
    const list = await (await fetch("/api/traces?service=" + encodeURIComponent(s))).json();
    document.getElementById("trace-list").innerHTML = list.map((t) => "<div><a class=\"trace\" data-trace=\"" + esc(t.trace_id) +
      "\">" + esc(t.root) + "</a> " + t.spans + " spans, " + fmt(t.duration_us / 1000, 1) + " ms " + esc(t.services.join(", ")) + "</div>").join("");
  });

  document.getElementById("trace-list").addEventListener("click", async (ev) => {
    const id = ev.target.dataset.trace; if (!id) return;
    const spans = await (await fetch("/api/traces/" + encodeURIComponent(id))).json();
    const t0 = Math.min(...spans.map((s) => s.timestamp || 0));
    const t1 = Math.max(...spans.map((s) => (s.timestamp || 0) + (s.duration || 0)));
    const total = Math.max(1, t1 - t0);
    document.getElementById("waterfall").innerHTML = "<h2>Trace " + esc(id) + "</h2>" + spans.map((s) => {
      const svc = (s.localEndpoint || {}).serviceName || "?";
      const left = 100 * ((s.timestamp || 0) - t0) / total, width = Math.max(0.5, 100 * (s.duration || 0) / total);
      return "<div class=\"span-row\" data-service=\"" + esc(svc) + "\"><span class=\"name\" title=\"" + esc(s.name) + "\">" + esc(svc) +
        "</span><span class=\"track\"><b style=\"left:" + left + "%;width:" + width + "%\"></b></span><span>" +
        fmt((s.duration || 0) / 1000, 1) + " ms</span></div>";
    }).join("");
  });

  function showDetails(id) {
    const el = cy.getElementById(id);
    if (el.empty()) return;
    const d = el.data();
    const rows = el.isEdge()
      ? [["edge", d.source + " → " + d.target], ["declared", d.declared ? "yes" + (d.weight !== null ? " (" + d.weight + "%)" : "") : "no"],
         ["req/s", fmt(d.rps, 2)], ["error %", fmt(d.error_pct, 2)], ["P50 ms", fmt(d.p50_ms, 1)], ["P99 ms", fmt(d.p99_ms, 1)],
         ["mTLS", d.mtls ? "yes" : d.mtls === false ? "no" : "unknown"], ["health", d.health]]
      : [["node", d.id], ["kind", d.kind], ["declared", d.declared ? "yes" : "no (seen only)"], ["health", d.health || ""]];
    document.getElementById("details").innerHTML = "<table>" + rows.map(([k, v]) => "<tr><th>" + k + "</th><td>" + esc(v) + "</td></tr>").join("") + "</table>";
  }
  cy.on("tap", "node, edge", (ev) => { state.selected = ev.target.id(); showDetails(state.selected); });

  fetch("/api/graph").then((r) => r.json()).then((s) => { if (s.graph) render(s); });
  const events = new EventSource("/api/events");
  events.onmessage = (ev) => render(JSON.parse(ev.data));
})();
