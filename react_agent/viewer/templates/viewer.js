// The run viewer: renders a run (embedded, or loaded from the API and followed live over SSE).
// Plain DOM with text nodes only: model and tool text is never parsed as HTML.
(() => {
  "use strict";
  const cfg = JSON.parse(document.getElementById("config").textContent);
  const app = document.getElementById("app");
  const runId = cfg.run_id;
  const FENCE = /^<<untrusted:([0-9a-f]+)>>\n([\s\S]*)\n<<\/untrusted:\1>>$/;
  const KINDS = { ok: "ok", skipped: "", interrupted: "warn", denied: "warn", retry: "warn", blocked: "bad" };
  const STATUSES = { completed: "ok", running: "live", awaiting_approval: "warn", max_steps: "warn",
                     max_tokens: "warn", token_budget: "warn", cancelled: "warn", interrupted: "warn" };
  let tree = cfg.data;          // the run, as react_agent.viewer.run_tree builds it
  let live = false;             // its task runs in the server
  let lastId = 0;               // the last event id seen
  let following = false;
  let message = "";             // a line under the header: errors, "sending decisions", ...
  const streamed = {};          // step index -> text streamed so far (a step under way)
  const decisions = {};         // call id -> {approve, reason?}
  let key = null;

  // -- small DOM helpers --------------------------------------------------------------------------
  function el(tag, cls, ...kids) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    for (const kid of kids) {
      if (kid === null || kid === undefined || kid === false) continue;
      node.append(kid instanceof Node ? kid : String(kid));   // a string becomes a text node
    }
    return node;
  }
  const num = (n) => Number(n || 0).toLocaleString("en-US");
  const cost = (c) => (c === null || c === undefined ? "n/a" : "$" + Number(c).toFixed(c && c < 0.01 ? 5 : 4));
  const ms = (t) => (!t ? "0 ms" : t < 1000 ? `${Math.round(t)} ms` : `${(t / 1000).toFixed(2)} s`);
  function usage() {
    return { requests: 0, prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, reasoning_tokens: 0,
             latency_ms: 0, cost_usd: 0 };
  }
  function add(total, u) {
    if (!u) return total;
    for (const k of ["requests", "prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens",
                     "latency_ms"]) total[k] += u[k] || 0;
    total.cost_usd = total.cost_usd === null || u.cost_usd === null || u.cost_usd === undefined
      ? null : total.cost_usd + u.cost_usd;
    return total;
  }
  const own = (run) => run.steps.reduce((t, s) => add(t, s.usage), usage());
  const totalOf = (run) => run.children.reduce((t, c) => add(t, totalOf(c)), own(run));
  const stepsOf = (run) => run.steps.length + run.children.reduce((n, c) => n + stepsOf(c), 0);
  function pretty(args) {
    try { return JSON.stringify(JSON.parse(args), null, 2); } catch { return args; }
  }
  function badge(text, kind) { return el("span", "badge " + (kind || ""), text.replaceAll("_", " ")); }
  function chip(text) { return el("span", "chip", text); }

  // -- rendering ----------------------------------------------------------------------------------
  function render() {
    document.body.dataset.state = !tree ? "loading" : live ? "live"
      : tree.status === "awaiting_approval" ? "paused" : tree.status === "running" ? "stopped" : "ended";
    if (!tree) return;
    const total = totalOf(tree);
    const status = live && tree.status !== "awaiting_approval" ? "running" : tree.status;
    const head = el("header", "",
      el("h1", "", tree.agent, badge(status, STATUSES[status] || "bad"),
         tree.status === "running" && !live ? badge("not running in this server: resume it", "warn") : null),
      el("div", "ids", "run ", el("code", "", tree.run_id), " · session ", el("code", "", tree.session || "-"),
         " · model ", el("code", "", tree.model || "-"),
         tree.started ? " · started " + new Date(tree.started * 1000).toLocaleString() : ""));
    const cards = el("section", "cards",
      card("Steps", num(stepsOf(tree)), tree.children.length ? `${tree.steps.length} own, ` +
           `${tree.children.length} nested run${tree.children.length > 1 ? "s" : ""}` : "model turns"),
      card("Tokens", num(total.prompt_tokens + total.completion_tokens),
           `${num(total.prompt_tokens)} in · ${num(total.completion_tokens)} out` +
           (total.cached_tokens ? ` · ${num(total.cached_tokens)} cached` : "")),
      card("Cost", cost(total.cost_usd), `${num(total.requests)} request${total.requests === 1 ? "" : "s"}`),
      card("Latency", ms(tree.ms || tree.steps.reduce((t, s) => t + (s.ms || 0), 0)),
           `model ${ms(total.latency_ms)}`));
    const parts = [head, message ? el("div", "status-line", message) : null, cards,
                   el("h2", "", "Question"), el("div", "box", tree.input || "")];
    if (tree.status === "awaiting_approval" && tree.pending.length) parts.push(...pendingPanel(tree));
    parts.push(el("h2", "", "Timeline"), timeline(tree));
    if (tree.error) parts.push(el("h2", "", "Error"), el("div", "box error", `${tree.error_type || "error"}: ${tree.error}`));
    if (tree.output !== null && tree.output !== undefined && tree.status !== "running") {
      parts.push(el("h2", "", "Output"),
                 el("div", "box answer", typeof tree.output === "string" ? tree.output : JSON.stringify(tree.output, null, 2)));
    }
    app.replaceChildren(...parts.filter(Boolean));
  }

  function card(label, value, detail) {
    return el("div", "card", el("div", "label", label), el("div", "value", value), el("div", "detail", detail));
  }

  function timeline(run) {
    const list = el("ol", "timeline");
    const steps = [...run.steps];
    if (run === tree) {   // a step under way: what has streamed so far
      for (const [index, text] of Object.entries(streamed)) {
        if (!steps.some((s) => s.index === Number(index))) {
          steps.push({ index: Number(index), thought: text, actions: [], observations: [], running: true });
        }
      }
    }
    steps.sort((a, b) => a.index - b.index);
    for (const step of steps) list.append(stepItem(run, step));
    if (!steps.length && run.children.length) {   // a router's own run: its classifier's and specialist's runs
      for (const child of run.children) list.append(el("li", "routed", nested(child)));
    } else if (!steps.length) {
      list.append(el("li", "step muted", live ? "waiting for the model…" : "no steps"));
    }
    return list;
  }

  function stepItem(run, step) {
    const u = step.usage;
    const item = el("li", "step" + (step.running ? " running" : ""));
    item.dataset.n = String(step.index + 1);   // shown from 1, as the report does
    item.dataset.step = String(step.index);
    item.append(el("div", "step-head", el("span", "step-title", `Step ${step.index + 1}`),
      u ? el("div", "chips", chip(`${num(u.prompt_tokens)} in · ${num(u.completion_tokens)} out`),
             chip(cost(u.cost_usd)), chip(`model ${ms(u.latency_ms)}`), chip(`step ${ms(step.ms)}`),
             step.finish_reason ? chip(step.finish_reason) : null)
        : el("div", "chips", badge("running", "live"))));
    const thought = step.running ? streamed[step.index] : step.thought;
    if (thought) item.append(el("p", "thought", thought));
    const waiting = new Set((run.status === "awaiting_approval" ? run.pending : []).map((p) => p.call_id));
    for (const call of step.actions) {
      const obs = step.observations.find((o) => o.call_id === call.id);
      item.append(action(call, obs, waiting.has(call.id)));
    }
    if (step.answer) item.append(el("div", "box answer", step.answer));
    if (step.note) item.append(el("div", "note", step.note));
    for (const child of run.children.filter((c) => c.parent_step === step.index)) item.append(nested(child));
    if (step.index === Math.max(...run.steps.map((s) => s.index))) {   // runs journaled without their step
      for (const child of run.children.filter((c) => c.parent_step === null || c.parent_step === undefined)) {
        item.append(nested(child));
      }
    }
    return item;
  }

  function action(call, obs, waiting) {
    const box = el("div", "action");
    box.dataset.tool = call.name;
    box.append(el("div", "call", el("span", "arrow", "Action"), el("span", "tool", call.name),
                  el("span", "muted", call.id)));
    box.append(el("div", "args", el("pre", "", pretty(call.arguments))));
    if (obs) {
      const fenced = FENCE.exec(obs.content);
      const body = fenced
        ? el("div", "untrusted", el("div", "untrusted-label", "untrusted tool output — fenced: the model is told it is data, not instructions"),
             el("pre", "", fenced[2]))
        : el("pre", "", obs.content);
      const o = el("div", "obs", el("div", "obs-head", "Observation", badge(obs.kind, KINDS[obs.kind] ?? "bad"),
                                    obs.ms >= 1 ? ms(obs.ms) : null), body);
      o.dataset.kind = obs.kind;
      box.append(o);
    } else {
      box.append(el("div", "obs muted", waiting ? "waiting for approval" : live ? "running…" : "no result"));
    }
    return box;
  }

  function nested(child) {
    const t = totalOf(child);
    const details = el("details", "nested");
    details.open = true;
    details.dataset.run = child.run_id;
    details.append(el("summary", "", `Delegated to ${child.agent} `, badge(child.status, STATUSES[child.status] || "bad"),
                      el("span", "muted", ` · ${stepsOf(child)} steps · ${num(t.prompt_tokens + t.completion_tokens)} tokens · ` +
                                          `${cost(t.cost_usd)} · ${ms(child.ms)} · run ${child.run_id}`)));
    details.append(el("p", "asked", child.input), timeline(child));
    const last = child.steps[child.steps.length - 1];
    const output = typeof child.output === "string" ? child.output : JSON.stringify(child.output);
    if (child.output !== null && child.output !== undefined && !(last && last.answer === output)) {
      details.append(el("div", "box answer", output));
    }
    return details;
  }

  function pendingPanel(run) {
    const panel = el("section", "pending");
    panel.append(el("strong", "", `Waiting for your decision on ${run.pending.length} call${run.pending.length > 1 ? "s" : ""}`));
    for (const p of run.pending) {
      const box = el("div", "action");
      box.dataset.pending = p.call_id;
      box.append(el("div", "call", el("span", "arrow", "Action"), el("span", "tool", p.tool), el("span", "muted", p.reason)),
                 el("div", "args", el("pre", "", pretty(p.arguments))));
      const buttons = el("div", "buttons");
      const decided = decisions[p.call_id];
      if (!cfg.api) {
        buttons.append(el("span", "muted", `decide with: python -m react_agent approve ${run.run_id} ${p.call_id}` +
                                           ` (or deny ... --reason WHY)`));
      } else if (decided) {
        buttons.append(badge(decided.approve ? "approved" : "denied", decided.approve ? "ok" : "bad"));
      } else {
        const reason = el("input");
        reason.type = "text";
        reason.placeholder = "reason, if you deny (the model reads it)";
        const yes = el("button", "approve", "Approve");
        const no = el("button", "deny", "Deny");
        yes.addEventListener("click", () => decide(p.call_id, { approve: true }));
        no.addEventListener("click", () => decide(p.call_id, { approve: false,
                                                               reason: reason.value.trim() || "denied in the run viewer" }));
        buttons.append(yes, no, reason);
      }
      box.append(buttons);
      panel.append(box);
    }
    return [el("h2", "", "Pending approval"), panel];
  }

  // -- the API --------------------------------------------------------------------------------------
  const headers = (extra) => ({ Authorization: `Bearer ${key}`, ...extra });
  const sleep = (t) => new Promise((done) => setTimeout(done, t));

  async function decide(callId, decision) {
    decisions[callId] = decision;
    render();
    if (!tree.pending.every((p) => decisions[p.call_id])) return;   // the API takes every decision at once
    message = "sending decisions…";
    render();
    const res = await fetch(`${cfg.api}/runs/${encodeURIComponent(runId)}/approvals`, {
      method: "POST", headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ decisions: Object.fromEntries(tree.pending.map((p) => [p.call_id, decisions[p.call_id]])) }),
    });
    for (const k of Object.keys(decisions)) delete decisions[k];
    message = res.ok ? "" : `the decisions were not taken: ${(await res.json().catch(() => ({}))).detail || res.status}`;
    await load();
  }

  let attempts = 0;
  async function load() {
    let res;
    try {
      res = await fetch(`${cfg.api}/runs/${encodeURIComponent(runId)}/timeline`, { headers: headers() });
    } catch (err) {   // the server is unreachable: keep trying, a little slower each time
      message = `cannot reach the server (${err.message}); retrying…`;
      render();
      setTimeout(load, 1000 * Math.min(++attempts, 10));
      return;
    }
    attempts = 0;
    message = message.startsWith("cannot reach") ? "" : message;
    if (res.status === 401) return askKey("That key was not accepted.");
    if (!res.ok) {
      document.body.dataset.state = "error";
      app.replaceChildren(el("h1", "", `Run ${runId}`),
                          el("p", "muted", res.status === 404 ? "No such run (or it is not yours)." : `Error ${res.status}`));
      return;
    }
    const body = await res.json();
    tree = body.run;
    live = body.live;
    document.body.dataset.lastEvent = String(lastId = body.events);
    for (const s of tree.steps) delete streamed[s.index];
    render();
    if (live) follow();
  }

  async function follow() {
    if (following) return;
    following = true;
    let failures = 0;
    while (live) {
      const abort = new AbortController();   // a silent connection (no event, no ping) is dropped
      let watchdog = setTimeout(() => abort.abort(), cfg.stall_ms);
      try {
        const res = await fetch(`${cfg.api}/runs/${encodeURIComponent(runId)}/events`, { signal: abort.signal,
          headers: headers({ Accept: "text/event-stream", "Last-Event-ID": String(lastId) }) });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          failures = 0;
          clearTimeout(watchdog);
          watchdog = setTimeout(() => abort.abort(), cfg.stall_ms);
          buffer += value;
          let match;
          while ((match = /\r\n\r\n|\n\n|\r\r/.exec(buffer))) {
            onBlock(buffer.slice(0, match.index));
            buffer = buffer.slice(match.index + match[0].length);
          }
        }
        clearTimeout(watchdog);
        break;   // the stream ended: the run ended or paused
      } catch (err) {
        clearTimeout(watchdog);
        if (++failures > 5) {   // give up following (reload the page to try again)
          following = false;
          message = `lost the run's events: ${err.message}`;
          render();
          return;
        }
        await sleep(500 * failures);   // reconnect with Last-Event-ID: nothing lost, nothing repeated
      }
    }
    following = false;
    await load();
  }

  function onBlock(block) {
    let id = null, type = "message";
    const data = [];
    for (const line of block.split(/\r\n|\r|\n/)) {
      if (!line || line.startsWith(":")) continue;   // keep-alive comments
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") type = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    if (id !== null) document.body.dataset.lastEvent = String(lastId = Number(id));
    apply(type, JSON.parse(data.join("\n")));
    render();
  }

  function stepOf(index) {
    let step = tree.steps.find((s) => s.index === index);
    if (!step) {
      step = { index, thought: streamed[index] || null, actions: [], observations: [], running: true };
      tree.steps.push(step);
    }
    return step;
  }

  function apply(type, event) {
    if (event.run_id !== tree.run_id) {      // a nested run's event (a router's specialist)
      if (type === "run_end") refresh();
      return;
    }
    if (type === "run_start") tree.status = "running";
    else if (type === "text_delta") streamed[event.step] = (streamed[event.step] || "") + event.text;
    else if (type === "tool_start") {
      const step = stepOf(event.step);
      if (!step.actions.some((a) => a.id === event.call.id)) step.actions.push(event.call);
    } else if (type === "tool_end") {
      const step = stepOf(event.step);
      step.observations = step.observations.filter((o) => o.call_id !== event.observation.call_id);
      step.observations.push(event.observation);
    } else if (type === "step_end") {
      tree.steps = tree.steps.filter((s) => s.index !== event.step.index).concat([event.step]);
      delete streamed[event.step.index];
      refresh();   // nested runs of this step are in the store now
    } else if (type === "run_end") {
      Object.assign(tree, { status: event.result.status, output: event.result.output, error: event.result.error,
                            error_type: event.result.error_type, pending: event.result.pending, ms: event.result.ms });
    }
  }

  let refreshing = null;
  function refresh() {   // the nested runs and records, from the store (at most one request at a time)
    if (refreshing) return;
    refreshing = fetch(`${cfg.api}/runs/${encodeURIComponent(runId)}/timeline`, { headers: headers() })
      .then((res) => (res.ok ? res.json() : null))
      .then((body) => { if (body) { tree.children = body.run.children; render(); } })
      .catch(() => {})
      .finally(() => { refreshing = null; });
  }

  // -- the key --------------------------------------------------------------------------------------
  function askKey(why) {
    document.body.dataset.state = "need-key";
    const input = el("input");
    input.type = "password";
    input.placeholder = "API key";
    const go = el("button", "approve", "Open");
    const submit = () => { key = input.value.trim(); sessionStorage.setItem("react-agent-key", key); load(); };
    go.addEventListener("click", submit);
    input.addEventListener("keydown", (e) => { if (e.key === "Enter") submit(); });
    app.replaceChildren(el("h1", "", `Run ${runId}`), el("p", "muted", why),
                        el("div", "keyform", input, go));
  }

  if (!cfg.api) {
    render();
    return;
  }
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("key")) {
    key = fragment.get("key");
    sessionStorage.setItem("react-agent-key", key);
    history.replaceState(null, "", location.pathname + location.search);   // not left in the address bar
  } else {
    key = sessionStorage.getItem("react-agent-key");
  }
  if (key) load(); else askKey("This page reads the run with your API key (kept in this tab only; or open it with #key=...).");
})();
