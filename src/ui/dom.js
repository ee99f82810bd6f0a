// The web UI's plumbing between the pure helpers (lib.js) and the views (app.js): the
// API client, the element builders, the error box, the view lifecycle, the checkpoint
// timeline's SVG and the session (GET /v1/acl/self's identity, the token prompt). The
// element builders put API data in as text nodes and attribute values, never as
// markup. Declares WorkrsDom for app.js.
/* global WorkrsLib */
/* exported WorkrsDom */
'use strict';
const WorkrsDom = (function (lib) {
  const { can, NEEDS, fmtTime, fmtBytes, fmtDuration, formatFingerprint, timeline } = lib;

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
    stopLeaderWatch();
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

  /** Asks the node who the stored token (or none, in dev mode) is, then shows the current view; retried while the node is unreachable. */
  async function identify() {
    // Only a secure-mode node serves HTTPS, and it answers no question without a token:
    // ask for one at once rather than be refused (dev mode, plain HTTP, needs none).
    if (window.location.protocol === 'https:' && !window.localStorage.getItem(TOKEN_KEY)) {
      askForToken(null);
      return;
    }
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
    watchLeader();
    showView();
  }

  // ------------------------------------------------------------------ the leader, in the header

  const LEADER_POLL_MS = 3000;
  /** Each watch's number: a tick of an older watch (signed out, or in again since) stops. */
  let leaderWatch = 0;
  let leaderTimer = null;

  /**
   * The header's "leader …", from GET /v1/cluster every LEADER_POLL_MS while someone is
   * signed in, whatever the view. Quiet about failures (the views report theirs): the
   * field says it does not know; a 401 still asks for a token (api()).
   */
  function watchLeader() {
    stopLeaderWatch();
    const mine = leaderWatch;
    const box = document.getElementById('leader');
    const tick = async () => {
      let text;
      try {
        const c = await getJson('/v1/cluster?stale=1');
        text = c.leader ? `leader ${c.leader}` : 'no leader';
      } catch (_) {
        text = 'leader unknown';
      }
      if (mine !== leaderWatch) return;
      box.textContent = text;
      leaderTimer = window.setTimeout(tick, LEADER_POLL_MS);
    };
    void tick();
  }

  function stopLeaderWatch() {
    leaderWatch += 1;
    if (leaderTimer !== null) window.clearTimeout(leaderTimer);
    leaderTimer = null;
    document.getElementById('leader').textContent = '';
  }

  // ------------------------------------------------------------------ result downloads

  /**
   * Downloads job `id`'s result tar through the browser's own download: index.html's
   * form posts the token in its body to POST /v1/jobs/:id/result, into the hidden
   * frame; the answer is an attachment, which the browser streams to disk. The page
   * never holds the tar (a fetch would: a Blob of all of it), and the token never goes
   * into a URL. A refusal loads its JSON error into the frame instead: shown as the
   * page's error.
   */
  function downloadResult(id) {
    const form = document.getElementById('download-form');
    const token = form.elements.namedItem('token');
    form.action = `/v1/jobs/${encodeURIComponent(id)}/result`;
    token.value = window.localStorage.getItem(TOKEN_KEY) || '';
    form.submit();
    // The submission took the form's data when submit() ran: the token leaves the DOM.
    token.value = '';
  }

  function watchDownloadFrame() {
    const frame = document.getElementById('download-frame');
    frame.addEventListener('load', () => {
      let text = '';
      try {
        text = frame.contentDocument && frame.contentDocument.body ? frame.contentDocument.body.textContent : '';
      } catch (_) {
        return; // not our origin's document: nothing to read
      }
      if (!text) return; // the empty frame, or a download (which loads nothing)
      let err;
      try {
        const body = JSON.parse(text);
        err = new ApiError(0, body.error.code, body.error.message);
      } catch (_) {
        err = new Error(`the download failed: ${text.slice(0, 200)}`);
      }
      if (err.code === 'TOKEN_INVALID' || err.code === 'UNAUTHORIZED') askForToken(err);
      else showError(err);
    });
  }

  /** In place of a control the role lacks, when its page is opened by its address. */
  function notAllowed(root, what, action) {
    root.append(h('p.muted', { id: 'not-allowed', text: `This token's role (${self.role}) cannot ${what}: that needs the ${NEEDS[action]} role.` }));
  }

  /** The view to show once the node said who we are (app.js's router). */
  let showView = () => undefined;

  /** Wires the token form: a token entered there is kept and the node asked again who we are. */
  function startSession(route) {
    showView = route;
    watchDownloadFrame();
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
  }

  // ------------------------------------------------------------------ views' plumbing

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

  return {
    ApiError, api, getJson, h, svg, stateBadge, showError, field, onLeave, leaveView, every, timelineSvg,
    self: () => self, identify, startSession, notAllowed, downloadResult,
  };
})(WorkrsLib);
