// The web UI served at GET /: a job list, a submit form with file upload, a job page
// (fields, attempts, checkpoint timeline, logs followed while the job runs), the
// cluster's nodes and, for admins, the API tokens. Plain browser JavaScript over the
// public HTTP API (docs/api.md): no framework, no build step. Everything from the API
// reaches the page as text (textContent, SVG attributes), never as markup.
//
// Before any view it asks GET /v1/acl/self who it is: the role decides which controls
// exist at all (the API refuses the rest anyway; the UI just does not offer them), and
// the answer carries the CA fingerprint shown in the header. A dev-mode node answers
// without a token, so the page only asks for one when the node says 401.
'use strict';
(function () {
  // ------------------------------------------------------------------ pure helpers

  const UNITS = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };

  /** "90", "90s", "1.5m", "2h" → seconds; null when empty; throws on anything else. */
  function parseDuration(text) {
    const s = String(text).trim();
    if (s === '') return null;
    const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(s);
    if (!m) throw new Error(`"${s}" is not a duration (e.g. 90, 90s, 5m, 2h)`);
    const v = Number(m[1]) * UNITS[m[2] || 's'];
    if (!(v > 0)) throw new Error(`"${s}" must be more than zero`);
    return v;
  }

  /** A command line split like a POSIX shell would for words: quotes and backslashes, no expansion. */
  function splitCommand(text) {
    const args = [];
    let cur = '';
    let inWord = false;
    let quote = null;
    const s = String(text);
    for (let i = 0; i < s.length; i++) {
      const ch = s[i];
      if (quote === "'") {
        if (ch === "'") quote = null;
        else cur += ch;
      } else if (quote === '"') {
        if (ch === '"') quote = null;
        else if (ch === '\\' && i + 1 < s.length && '"\\$`'.includes(s[i + 1])) cur += s[++i];
        else cur += ch;
      } else if (ch === "'" || ch === '"') {
        quote = ch;
        inWord = true;
      } else if (ch === '\\' && i + 1 < s.length) {
        cur += s[++i];
        inWord = true;
      } else if (/\s/.test(ch)) {
        if (inWord) args.push(cur);
        cur = '';
        inWord = false;
      } else {
        cur += ch;
        inWord = true;
      }
    }
    if (quote) throw new Error(`the command has an unterminated ${quote} quote`);
    if (inWord) args.push(cur);
    return args;
  }

  /** KEY=VALUE per line (blank lines and # comments skipped) → object. */
  function parseEnv(text) {
    const env = {};
    String(text).split('\n').forEach((raw, n) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const eq = line.indexOf('=');
      if (eq <= 0) throw new Error(`environment line ${n + 1}: expected KEY=VALUE, got "${line}"`);
      env[line.slice(0, eq)] = line.slice(eq + 1);
    });
    return env;
  }

  function lines(text) {
    return String(text).split('\n').map((l) => l.trim()).filter((l) => l !== '');
  }

  /** The form's values (strings) and the chosen file names → the job spec of docs/api.md. */
  function buildSpec(v, fileNames) {
    const spec = {};
    if (v.image.trim()) spec.image = v.image.trim();
    const command = splitCommand(v.command);
    if (command.length === 0) throw new Error('the command is empty');
    spec.command = command;
    const env = parseEnv(v.env);
    if (Object.keys(env).length) spec.env = env;
    if (fileNames.length) {
      const seen = new Set();
      for (const f of fileNames) {
        if (seen.has(f)) throw new Error(`two files are named ${f} (files land in /work by their name)`);
        seen.add(f);
      }
      spec.files = fileNames.slice();
    }
    const outputs = lines(v.outputs);
    if (outputs.length) spec.outputs = outputs;
    const estimate = parseDuration(v.estimate);
    if (estimate !== null) spec.estimateSeconds = estimate;
    if (v.checkpoint === 'interval') {
      const every = parseDuration(v.interval);
      if (every === null) throw new Error('give the checkpoint interval');
      spec.checkpoint = { mode: 'interval', intervalSeconds: every };
    } else if (v.checkpoint === 'off' || v.checkpoint === 'auto') {
      spec.checkpoint = { mode: v.checkpoint };
    }
    if (v.memoryMB.trim()) spec.memoryMB = Number(v.memoryMB);
    if (v.cpus.trim()) spec.cpus = Number(v.cpus);
    const timeout = parseDuration(v.timeout);
    if (timeout !== null) spec.timeoutSeconds = timeout;
    return spec;
  }

  function fmtBytes(n) {
    if (n === null || n === undefined) return '-';
    const units = ['B', 'KB', 'MB', 'GB', 'TB'];
    let v = n;
    let u = 0;
    while (v >= 1000 && u < units.length - 1) {
      v /= 1000;
      u++;
    }
    return `${u === 0 ? v : v.toFixed(v < 10 ? 2 : 1)} ${units[u]}`;
  }

  function fmtDuration(ms) {
    if (ms === null || ms === undefined) return '-';
    const s = ms / 1000;
    if (s < 60) return `${s < 10 ? s.toFixed(2) : s.toFixed(1)} s`;
    const m = Math.floor(s / 60);
    if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
    return `${Math.floor(m / 60)} h ${m % 60} min`;
  }

  function fmtTime(ms) {
    if (ms === null || ms === undefined) return '-';
    return new Date(ms).toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  }

  /**
   * The checkpoint timeline of a job as geometry in [0, width]: one bar per attempt
   * (start to end, or to `now` while open), a mark per checkpoint, and for each
   * attempt resumed from a checkpoint, the checkpoint's x.
   */
  function timeline(job, now, width) {
    const t0 = job.createdAt;
    const t1 = Math.max(t0 + 1, job.finishedAt ?? now, ...job.attempts.map((a) => a.endedAt ?? a.startedAt ?? t0), ...job.checkpoints.map((c) => c.at));
    const x = (t) => ((t - t0) / (t1 - t0)) * width;
    const attempts = job.attempts.map((a) => {
      const from = a.fromCheckpoint ? job.checkpoints.find((c) => c.epoch === a.fromCheckpoint.epoch && c.seq === a.fromCheckpoint.seq) : undefined;
      const start = a.startedAt ?? a.endedAt ?? (a.epoch === job.epoch && job.finishedAt === null ? now : t0);
      const end = a.endedAt ?? (job.finishedAt ?? now);
      return {
        epoch: a.epoch,
        node: a.node,
        x0: x(start),
        x1: Math.max(x(start) + 1, x(end)),
        open: a.endedAt === null && job.finishedAt === null,
        resumedFromX: from ? x(from.at) : null,
        restoreError: a.restoreError,
      };
    });
    const checkpoints = job.checkpoints.map((c) => ({ seq: c.seq, epoch: c.epoch, x: x(c.at), bytes: c.bytes, durationMs: c.durationMs, holders: c.holders }));
    return { t0, t1, attempts, checkpoints };
  }

  // ------------------------------------------------------------------ roles

  const ROLES = ['read', 'submit', 'admin'];
  /** The least role each UI action needs (docs/security.md's role table). */
  const NEEDS = { submit: 'submit', cancel: 'submit', tokens: 'admin' };

  /**
   * Whether the identity `self` (GET /v1/acl/self) may do `action`. Tokens exist only
   * in secure mode: a dev-mode node is all admin but has no token API.
   */
  function can(self, action) {
    const need = NEEDS[action];
    if (need === undefined) throw new Error(`unknown UI action ${action}`);
    if (!self || !ROLES.includes(self.role)) return false;
    if (action === 'tokens' && !self.secure) return false;
    return ROLES.indexOf(self.role) >= ROLES.indexOf(need);
  }

  /** "AB:CD:…", "sha256:abcd…" → "sha256:abcd ef01 …" (16 groups of 4 hex digits, easy to compare by eye). */
  function formatFingerprint(text) {
    const hex = String(text).trim().toLowerCase().replace(/^sha256:/, '').replace(/[:\s]/g, '');
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new Error(`"${text}" is not a SHA-256 fingerprint`);
    return `sha256:${hex.match(/.{4}/g).join(' ')}`;
  }

  /** The token form's values → the body of POST /v1/acl/tokens. */
  function buildTokenRequest(v) {
    if (!ROLES.includes(v.role)) throw new Error(`the role must be one of ${ROLES.join(', ')}`);
    const req = { role: v.role };
    const name = String(v.name).trim();
    if (name.length > 64) throw new Error('the name is at most 64 characters');
    if (name) req.name = name;
    const ttl = parseDuration(v.ttl);
    if (ttl !== null) {
      // The API takes whole seconds.
      if (ttl < 1) throw new Error('the lifetime must be at least 1 s');
      req.ttlSeconds = Math.round(ttl);
    }
    return req;
  }

  const helpers = { parseDuration, splitCommand, parseEnv, buildSpec, fmtBytes, fmtDuration, timeline, can, formatFingerprint, buildTokenRequest };
  window.WorkrsUI = helpers;

  // ------------------------------------------------------------------ the API

  const TOKEN_KEY = 'workrs.token';

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  function authHeaders(extra) {
    const h = Object.assign({}, extra || {});
    const token = window.localStorage.getItem(TOKEN_KEY);
    if (token) h.Authorization = `Bearer ${token}`;
    return h;
  }

  /** A refused request's `{error:{code,message}}` as an ApiError. */
  async function errorOf(r, method, path) {
    let code = `HTTP_${r.status}`;
    let message = `${method} ${path}: HTTP ${r.status}`;
    try {
      const body = await r.json();
      if (body && body.error) {
        code = body.error.code;
        message = body.error.message;
      }
    } catch (_) {
      // not JSON: keep the status line
    }
    return new ApiError(r.status, code, message);
  }

  /** A request; anything but 2xx throws its ApiError, and a 401 (no, unknown, revoked or expired token) also asks for a token. */
  async function api(method, path, opts) {
    const o = opts || {};
    const r = await window.fetch(path, { method, headers: authHeaders(o.headers), body: o.body, signal: o.signal });
    if (r.ok) return r;
    const err = await errorOf(r, method, path);
    if (r.status === 401) askForToken(err);
    throw err;
  }

  async function getJson(path, signal) {
    return (await api('GET', path, { signal })).json();
  }

  // ------------------------------------------------------------------ DOM helpers

  const SVG_NS = 'http://www.w3.org/2000/svg';

  /** h('tag.class', {attr: v}, ...children): children are nodes or text (never parsed as HTML). */
  function h(spec, attrs, ...children) {
    const [tag, ...classes] = spec.split('.');
    const el = document.createElement(tag);
    if (classes.length) el.className = classes.join(' ');
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else if (k === 'text') el.textContent = String(v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof window.Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function svg(tag, attrs, ...children) {
    const el = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) if (v !== null && v !== undefined) el.setAttribute(k, String(v));
    for (const c of children) if (c !== null && c !== undefined) el.append(c instanceof window.Node ? c : document.createTextNode(String(c)));
    return el;
  }

  function stateBadge(state) {
    return h(`span.state.state-${state}`, { text: state });
  }

  function showError(err) {
    const box = document.getElementById('error');
    if (!err) {
      box.hidden = true;
      box.textContent = '';
      return;
    }
    box.hidden = false;
    box.textContent = err instanceof ApiError ? `${err.message} (${err.code})` : String(err && err.message ? err.message : err);
  }

  // ------------------------------------------------------------------ who we are

  /** GET /v1/acl/self's answer for the token in use; null until known (no view is shown before). */
  let self = null;

  /**
   * The node refused our credential: forget who we were, stop the view (its polling
   * would only be refused again) and ask for a token, with the node's reason when a
   * token was sent (an unknown, revoked or expired one).
   */
  function askForToken(err) {
    self = null;
    leaveView();
    document.getElementById('view').replaceChildren();
    showError(null);
    showIdentity();
    const sent = window.localStorage.getItem(TOKEN_KEY) !== null;
    document.getElementById('token-message').textContent = sent && err ? `${err.message} (${err.code})` : '';
    document.getElementById('token-form').hidden = false;
    document.getElementById('token').focus();
  }

  /** The header's identity (role, token name, CA fingerprint or dev mode) and the nav links the role may use. */
  function showIdentity() {
    const box = document.getElementById('identity');
    for (const a of document.querySelectorAll('nav a[data-nav]')) {
      const action = a.getAttribute('data-nav');
      if (action in NEEDS) a.hidden = !can(self, action);
    }
    if (!self) {
      box.replaceChildren();
      return;
    }
    const who = h('span', {}, h(`span.role.role-${self.role}`, { id: 'role', text: self.role }),
      self.name ? h('span.muted', { text: ` token "${self.name}"` }) : null,
      self.expiresAt ? h('span.muted', { text: `, expires ${fmtTime(self.expiresAt)}` }) : null);
    if (!self.secure) {
      box.replaceChildren(who, h('span.warn', { id: 'dev-mode', text: 'dev mode: no TLS, no tokens' }));
      return;
    }
    let ca;
    try {
      ca = h('span', { title: "the cluster CA's SHA-256 fingerprint: compare it with the one workrs start logged" },
        h('span.muted', { text: 'CA ' }), h('span.mono.fingerprint', { id: 'ca-fingerprint', text: formatFingerprint(self.caFingerprint) }));
    } catch (_) {
      ca = h('span.warn', { id: 'ca-fingerprint', text: 'CA fingerprint unknown' });
    }
    const change = h('button.link', { type: 'button', id: 'change-token', text: 'use another token', onclick: () => {
      window.localStorage.removeItem(TOKEN_KEY);
      askForToken(null);
    } });
    box.replaceChildren(who, ca, change);
  }

  /** Asks the node who the stored token (or none) is, then shows the current view; retried while the node is unreachable. */
  async function identify() {
    try {
      self = await getJson('/v1/acl/self');
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return; // api() asked for a token
      showError(err);
      window.setTimeout(identify, 3000);
      return;
    }
    document.getElementById('token-form').hidden = true;
    document.getElementById('token-message').textContent = '';
    showIdentity();
    route();
  }

  /** In place of a control the role lacks, when its page is opened by its address. */
  function notAllowed(root, what, action) {
    root.append(h('p.muted', { id: 'not-allowed', text: `This token's role (${self.role}) cannot ${what}: that needs the ${NEEDS[action]} role.` }));
  }

  // ------------------------------------------------------------------ views

  /** The current view's cleanup: timers and streams stop when the route changes. */
  let leaving = [];

  function onLeave(fn) {
    leaving.push(fn);
  }

  function leaveView() {
    for (const fn of leaving) fn();
    leaving = [];
  }

  /** A label and its input as two cells of a form.submit grid. */
  function field(label, input, hint) {
    return [h('label', { for: input.id, text: label }), h('div', {}, input, hint ? h('div.muted', { text: hint }) : null)];
  }

  function every(ms, fn) {
    let stopped = false;
    let timer = null;
    const tick = async () => {
      try {
        await fn();
      } catch (err) {
        if (!stopped) showError(err);
      }
      if (!stopped) timer = window.setTimeout(tick, ms);
    };
    onLeave(() => {
      stopped = true;
      if (timer !== null) window.clearTimeout(timer);
    });
    void tick();
  }

  const JOB_LIST_LIMIT = 200;

  function jobsView(root, query) {
    const stateSel = h('select', { 'aria-label': 'state', onchange: () => (location.hash = stateSel.value ? `#/?state=${stateSel.value}` : '#/') },
      ['', 'pending', 'running', 'succeeded', 'failed', 'cancelled'].map((s) => h('option', { value: s, selected: s === (query.get('state') || ''), text: s || 'all states' })));
    const body = h('tbody');
    root.append(
      h('h1', { text: 'Jobs' }),
      h('div.toolbar', {}, stateSel, can(self, 'submit') ? h('a', { href: '#/submit', text: 'Submit a job' }) : null),
      h('table', {}, h('thead', {}, h('tr', {}, ['Job', 'State', 'Image', 'Command', 'Node', 'Epoch', 'Checkpoints', 'Created'].map((c) => h('th', { text: c })))), body),
    );
    const state = query.get('state');
    every(2000, async () => {
      // Rows are summaries (no spec); one page of the newest, `next` says whether there are more.
      const list = await getJson(`/v1/jobs?limit=${JOB_LIST_LIMIT}${state ? `&state=${encodeURIComponent(state)}` : ''}&stale=1`);
      const jobs = list.jobs;
      body.replaceChildren(...jobs.map((j) => h('tr', { 'data-job': j.id },
        h('td', {}, h('a.mono', { href: `#/jobs/${encodeURIComponent(j.id)}`, text: j.id })),
        h('td', {}, stateBadge(j.state)),
        h('td.mono', { text: j.image }),
        h('td.mono', { text: j.commandLine }),
        h('td', { text: j.node || '-' }),
        h('td', { text: j.epoch }),
        h('td', { text: j.checkpointCount }),
        h('td.muted', { text: fmtTime(j.createdAt) }),
      )));
      if (jobs.length === 0) body.append(h('tr', {}, h('td.muted', { colspan: 8, text: 'no jobs' })));
      else if (list.next) body.append(h('tr', {}, h('td.muted', { colspan: 8, text: `the newest ${jobs.length} are shown; workrs jobs --all lists them all` })));
      showError(null);
    });
  }

  function submitView(root) {
    if (!can(self, 'submit')) {
      notAllowed(root, 'submit jobs', 'submit');
      return;
    }
    const image = h('input', { id: 'f-image', type: 'text', name: 'image', placeholder: 'workrs/busybox:1 (default)' });
    const command = h('input', { id: 'f-command', type: 'text', name: 'command', placeholder: 'python3 job.py --rounds 10', required: true });
    const files = h('input', { id: 'f-files', type: 'file', name: 'files', multiple: true });
    const env = h('textarea', { id: 'f-env', name: 'env', placeholder: 'KEY=VALUE, one per line' });
    const outputs = h('textarea', { id: 'f-outputs', name: 'outputs', placeholder: 'paths under /work to keep, one per line' });
    const estimate = h('input', { id: 'f-estimate', type: 'text', name: 'estimate', placeholder: 'e.g. 10m' });
    const checkpoint = h('select', { id: 'f-checkpoint', name: 'checkpoint' }, ['auto', 'interval', 'off'].map((m) => h('option', { value: m, text: m })));
    const interval = h('input', { id: 'f-interval', type: 'text', name: 'interval', placeholder: 'e.g. 30s (mode interval)' });
    const memory = h('input', { id: 'f-memory', type: 'number', name: 'memoryMB', min: 6, placeholder: 'MB' });
    const cpus = h('input', { id: 'f-cpus', type: 'number', name: 'cpus', min: 0.01, step: 0.01 });
    const timeout = h('input', { id: 'f-timeout', type: 'text', name: 'timeout', placeholder: 'e.g. 1h' });
    const button = h('button', { type: 'submit', text: 'Submit' });
    const form = h('form.submit', { id: 'submit-form' },
      field('Image', image), field('Command', command, 'split like a shell: quotes group words, nothing is expanded'),
      field('Files', files, 'uploaded into /work before the job starts'), field('Environment', env), field('Outputs', outputs),
      field('Estimate', estimate, 'how long the job runs: the checkpoint policy plans with it'),
      field('Checkpoints', checkpoint), field('Interval', interval), field('Memory (MB)', memory), field('CPUs', cpus), field('Timeout', timeout),
      h('div.actions', {}, button));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      const chosen = Array.from(files.files || []);
      let spec;
      try {
        spec = buildSpec({ image: image.value, command: command.value, env: env.value, outputs: outputs.value, estimate: estimate.value, checkpoint: checkpoint.value, interval: interval.value, memoryMB: memory.value, cpus: cpus.value, timeout: timeout.value }, chosen.map((f) => f.name));
      } catch (err) {
        showError(err);
        return;
      }
      button.disabled = true;
      button.textContent = 'Submitting…';
      try {
        const data = new window.FormData();
        data.append('spec', JSON.stringify(spec));
        for (const f of chosen) data.append('file', f, f.name);
        const key = `ui-${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
        const r = await api('POST', '/v1/jobs', { body: data, headers: { 'Idempotency-Key': key } });
        const job = await r.json();
        showError(null);
        location.hash = `#/jobs/${encodeURIComponent(job.id)}`;
      } catch (err) {
        showError(err);
      } finally {
        button.disabled = false;
        button.textContent = 'Submit';
      }
    });
    root.append(h('h1', { text: 'Submit a job' }), form);
  }

  function timelineSvg(job, now) {
    const width = 1000;
    const rowH = 26;
    const top = 8;
    const g = timeline(job, now, width);
    const height = top + Math.max(1, g.attempts.length) * rowH + 30;
    const el = svg('svg', { class: 'timeline', viewBox: `-70 0 ${width + 90} ${height}`, role: 'img', 'aria-label': 'attempts and checkpoints over time' });
    g.attempts.forEach((a, i) => {
      const y = top + i * rowH;
      el.append(svg('text', { x: -66, y: y + 15 }, `#${a.epoch} ${a.node}`));
      const bar = svg('rect', { class: a.open ? 'attempt' : 'attempt ended', x: a.x0, y: y + 3, width: Math.max(1, a.x1 - a.x0), height: rowH - 8 });
      bar.append(svg('title', {}, `attempt ${a.epoch} on ${a.node}${a.restoreError ? `: restore failed: ${a.restoreError}` : ''}`));
      el.append(bar);
      if (a.resumedFromX !== null) el.append(svg('path', { class: 'resume', d: `M${a.resumedFromX},${y - 4} L${a.x0},${y + rowH / 2}` }));
      for (const c of g.checkpoints.filter((c) => c.epoch === a.epoch)) {
        const mark = svg('circle', { class: 'checkpoint', cx: c.x, cy: y + rowH / 2 - 1, r: 4 });
        mark.append(svg('title', {}, `checkpoint ${c.epoch}.${c.seq}: ${fmtBytes(c.bytes)} in ${fmtDuration(c.durationMs)}, on ${c.holders.join(', ')}`));
        el.append(mark);
      }
    });
    const axisY = top + Math.max(1, g.attempts.length) * rowH + 6;
    el.append(svg('line', { class: 'axis', x1: 0, x2: width, y1: axisY, y2: axisY }));
    el.append(svg('text', { x: 0, y: axisY + 16 }, '0 s'));
    el.append(svg('text', { x: width, y: axisY + 16, 'text-anchor': 'end' }, fmtDuration(g.t1 - g.t0)));
    return el;
  }

  function jobView(root, id) {
    const head = h('div');
    const fields = h('div');
    const timelineBox = h('div');
    const attemptsBox = h('div');
    const checkpointsBox = h('div');
    const logs = h('pre.logs', { id: 'logs' });
    root.append(head, fields, h('h2', { text: 'Timeline' }), timelineBox, h('h2', { text: 'Attempts' }), attemptsBox, h('h2', { text: 'Checkpoints' }), checkpointsBox, h('h2', { text: 'Logs' }), logs);

    const controller = new AbortController();
    onLeave(() => controller.abort());
    // One log stream per (epoch, finished): a resumed attempt runs elsewhere, and a
    // finished job's whole log comes from its result; the previous stream is dropped.
    let logsKey = null;
    let logsStream = null;
    const followLogs = async (follow) => {
      if (logsStream) logsStream.abort();
      const stream = new AbortController();
      logsStream = stream;
      controller.signal.addEventListener('abort', () => stream.abort());
      try {
        const r = await api('GET', `/v1/jobs/${encodeURIComponent(id)}/logs${follow ? '?follow=1' : ''}`, { signal: stream.signal });
        const reader = r.body.getReader();
        const decoder = new window.TextDecoder();
        logs.textContent = '';
        for (;;) {
          const { done, value } = await reader.read();
          if (done || stream.signal.aborted) break;
          logs.append(decoder.decode(value, { stream: true }));
          logs.scrollTop = logs.scrollHeight;
        }
        if (!stream.signal.aborted) logs.append(decoder.decode());
      } catch (err) {
        if (!stream.signal.aborted) logs.textContent = `(logs unavailable: ${err.message})`;
      }
    };

    every(1500, async () => {
      const job = await getJson(`/v1/jobs/${encodeURIComponent(id)}?stale=1`, controller.signal);
      const final = job.finishedAt !== null;
      const cancel = can(self, 'cancel') && h('button.secondary', { type: 'button', id: 'cancel', text: 'Cancel', disabled: final, onclick: async () => {
        if (!window.confirm(`Cancel ${id}?`)) return;
        try {
          await api('DELETE', `/v1/jobs/${encodeURIComponent(id)}`);
        } catch (err) {
          showError(err);
        }
      } });
      const result = h('button.secondary', { type: 'button', text: 'Download result', disabled: !final || job.state === 'cancelled', onclick: async () => {
        try {
          const r = await api('GET', `/v1/jobs/${encodeURIComponent(id)}/result`);
          const url = URL.createObjectURL(await r.blob());
          const a = h('a', { href: url, download: `${id}.tar` });
          document.body.append(a);
          a.click();
          a.remove();
          window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
        } catch (err) {
          showError(err);
        }
      } });
      head.replaceChildren(h('h1', {}, h('span.mono', { text: job.id }), ' ', stateBadge(job.state)), h('div.toolbar', {}, cancel, result));
      const policy = job.policy || {};
      fields.replaceChildren(h('dl.fields', {},
        h('dt', { text: 'Image' }), h('dd.mono', { text: job.spec.image }),
        h('dt', { text: 'Command' }), h('dd.mono', { text: job.spec.command.join(' ') }),
        h('dt', { text: 'Files' }), h('dd.mono', { text: job.spec.files.join(', ') || '-' }),
        h('dt', { text: 'Node' }), h('dd', { text: `${job.node || '-'} (epoch ${job.epoch})` }),
        h('dt', { text: 'Exit code' }), h('dd', { text: job.exitCode === null ? '-' : job.exitCode }),
        h('dt', { text: 'Estimate' }), h('dd', { text: job.spec.estimateSeconds === null ? '-' : fmtDuration(job.spec.estimateSeconds * 1000) }),
        h('dt', { text: 'Checkpoint policy' }), h('dd', {}, h('span', { text: `${policy.mode}${policy.intervalSeconds ? `, every ${policy.intervalSeconds.toFixed(1)} s` : ''}` }), policy.reason ? h('div.muted', { text: policy.reason }) : null),
        h('dt', { text: 'Created' }), h('dd', { text: fmtTime(job.createdAt) }),
        h('dt', { text: 'Started' }), h('dd', { text: fmtTime(job.startedAt) }),
        h('dt', { text: 'Finished' }), h('dd', { text: final ? `${fmtTime(job.finishedAt)} (${fmtDuration(job.finishedAt - (job.startedAt ?? job.createdAt))} after the start)` : '-' }),
      ));
      timelineBox.replaceChildren(job.attempts.length ? timelineSvg(job, Date.now()) : h('p.muted', { text: 'not started yet' }));
      attemptsBox.replaceChildren(h('table', {},
        h('thead', {}, h('tr', {}, ['Epoch', 'Node', 'Resumed from', 'Started', 'Ended', 'Why'].map((c) => h('th', { text: c })))),
        h('tbody', {}, job.attempts.map((a) => h('tr', {},
          h('td', { text: a.epoch }), h('td', { text: a.node }),
          h('td', {}, a.fromCheckpoint ? `checkpoint ${a.fromCheckpoint.epoch}.${a.fromCheckpoint.seq}` : 'the start', a.restoreError ? h('div.state.state-failed', { text: `restore failed: ${a.restoreError}` }) : null),
          h('td', { text: fmtTime(a.startedAt) }), h('td', {}, fmtTime(a.endedAt), a.failure ? h('div.state.state-failed', { text: `failed: ${a.failure}` }) : null), h('td.muted', { text: a.reason }))))));
      checkpointsBox.replaceChildren(job.checkpoints.length === 0 ? h('p.muted', { text: 'none yet' }) : h('table', {},
        h('thead', {}, h('tr', {}, ['Checkpoint', 'At', 'Size', 'Took', 'Frozen', 'Held by'].map((c) => h('th', { text: c })))),
        h('tbody', {}, job.checkpoints.map((c) => h('tr', {},
          h('td', { text: `${c.epoch}.${c.seq}` }), h('td', { text: fmtTime(c.at) }), h('td', { text: fmtBytes(c.bytes) }),
          h('td', { text: fmtDuration(c.durationMs) }), h('td', { text: fmtDuration(c.frozenMs) }), h('td', { text: c.holders.join(', ') }))))));
      const key = `${job.epoch}:${final}`;
      if (job.epoch > 0 && key !== logsKey && (final || job.attempts.some((a) => a.epoch === job.epoch && a.startedAt !== null))) {
        logsKey = key;
        void followLogs(!final);
      }
      showError(null);
    });
  }

  function clusterView(root) {
    const body = h('tbody');
    const summary = h('p.muted');
    root.append(h('h1', { text: 'Cluster' }), summary,
      h('table', {}, h('thead', {}, h('tr', {}, ['Node', 'Role', 'State', 'API', 'Running', 'Last seen'].map((c) => h('th', { text: c })))), body));
    every(2000, async () => {
      const c = await getJson('/v1/cluster?stale=1');
      summary.textContent = `leader ${c.leader || 'none'}, term ${c.term}, commit index ${c.commitIndex}`;
      body.replaceChildren(...c.nodes.map((n) => h('tr', { 'data-node': n.id },
        h('td', { text: n.id + (n.id === c.leader ? ' (leader)' : '') }), h('td', { text: n.role }), h('td', {}, stateBadge(n.state)),
        h('td.mono', { text: n.api || '-' }), h('td', { text: `${n.running}/${n.slots}` }), h('td', { text: n.lastSeenMs === null ? '-' : `${fmtDuration(n.lastSeenMs)} ago` }))));
      showError(null);
    });
  }

  /** Admins: the API tokens (never their secrets), a form that makes one and shows it once, and revocation. */
  function tokensView(root) {
    if (!self.secure) {
      root.append(h('p.muted', { id: 'not-allowed', text: 'A dev-mode node has no tokens: start it with --secret-file to use them.' }));
      return;
    }
    if (!can(self, 'tokens')) {
      notAllowed(root, 'manage tokens', 'tokens');
      return;
    }
    const role = h('select', { id: 't-role', name: 'role' }, ROLES.map((r) => h('option', { value: r, text: r })));
    const name = h('input', { id: 't-name', type: 'text', name: 'name', maxlength: 64, placeholder: 'e.g. camera-3' });
    const ttl = h('input', { id: 't-ttl', type: 'text', name: 'ttl', placeholder: 'e.g. 30d (empty: never expires)' });
    const button = h('button', { type: 'submit', text: 'Create' });
    const created = h('div', { id: 'new-token-box' });
    const form = h('form.submit', { id: 'token-create-form' },
      field('Role', role, 'read: every GET; submit: also submit and cancel jobs; admin: everything'),
      field('Name', name), field('Lifetime', ttl), h('div.actions', {}, button));
    const body = h('tbody');

    const load = async () => {
      const list = await getJson('/v1/acl/tokens');
      body.replaceChildren(...list.tokens.map((tk) => h('tr', { 'data-token': tk.id },
        h('td.mono', {}, tk.id, tk.id === self.id ? h('span.muted', { text: ' (this browser)' }) : null),
        h('td', { text: tk.name || '-' }), h('td', {}, h(`span.role.role-${tk.role}`, { text: tk.role })),
        h('td', { text: fmtTime(tk.createdAt) }), h('td', { text: tk.expiresAt === null ? 'never' : fmtTime(tk.expiresAt) }),
        h('td', {}, h('button.secondary', { type: 'button', text: 'Revoke', onclick: () => revoke(tk) })))));
      if (list.tokens.length === 0) body.append(h('tr', {}, h('td.muted', { colspan: 6, text: 'no tokens' })));
      showError(null);
    };
    const revoke = async (tk) => {
      const own = tk.id === self.id ? ' This browser uses it: the page will ask for another token.' : '';
      if (!window.confirm(`Revoke token ${tk.id}${tk.name ? ` (${tk.name})` : ''}? Every client using it is refused from then on.${own}`)) return;
      try {
        await api('DELETE', `/v1/acl/tokens/${encodeURIComponent(tk.id)}`);
        await load();
      } catch (err) {
        showError(err);
      }
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      let req;
      try {
        req = buildTokenRequest({ role: role.value, name: name.value, ttl: ttl.value });
      } catch (err) {
        showError(err);
        return;
      }
      button.disabled = true;
      try {
        const r = await api('POST', '/v1/acl/tokens', { body: JSON.stringify(req), headers: { 'content-type': 'application/json' } });
        const tk = await r.json();
        // The only time the secret is shown: the node keeps its hash alone.
        created.replaceChildren(h('div.new-token', {},
          h('div', { text: `New ${tk.role} token${tk.name ? ` "${tk.name}"` : ''}${tk.expiresAt === null ? '' : `, expires ${fmtTime(tk.expiresAt)}`}. Copy it now: it is not shown again.` }),
          h('code', { id: 'new-token', text: tk.token })));
        name.value = '';
        ttl.value = '';
        await load();
      } catch (err) {
        showError(err);
      } finally {
        button.disabled = false;
      }
    });
    root.append(h('h1', { text: 'API tokens' }), created, form, h('h2', { text: 'Tokens' }),
      h('table', {}, h('thead', {}, h('tr', {}, ['ID', 'Name', 'Role', 'Created', 'Expires', ''].map((c) => h('th', { text: c })))), body));
    every(5000, load);
  }

  // ------------------------------------------------------------------ routing

  function route() {
    leaveView();
    showError(null);
    const root = document.getElementById('view');
    root.replaceChildren();
    if (!self) return; // identify() routes once it knows who we are
    const hash = location.hash.replace(/^#/, '') || '/';
    const [path, qs] = hash.split('?');
    const query = new URLSearchParams(qs || '');
    let nav = 'jobs';
    const m = /^\/jobs\/([^/]+)$/.exec(path);
    if (m) jobView(root, decodeURIComponent(m[1]));
    else if (path === '/submit') {
      nav = 'submit';
      submitView(root);
    } else if (path === '/cluster') {
      nav = 'cluster';
      clusterView(root);
    } else if (path === '/tokens') {
      nav = 'tokens';
      tokensView(root);
    } else jobsView(root, query);
    for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.getAttribute('data-nav') === nav);
  }

  function start() {
    const form = document.getElementById('token-form');
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const input = document.getElementById('token');
      const value = input.value.trim();
      input.value = '';
      if (value) window.localStorage.setItem(TOKEN_KEY, value);
      else window.localStorage.removeItem(TOKEN_KEY);
      form.hidden = true;
      void identify();
    });
    window.addEventListener('hashchange', route);
    void identify();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})();
