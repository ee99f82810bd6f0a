// The web UI's pure helpers (no DOM, no network): durations, shell-like command
// splitting, the job spec and token request built from form values, formatting, the
// checkpoint timeline's geometry and which role may do what. The first of the UI's
// three scripts (index.html loads lib.js, dom.js, app.js in that order); it declares
// WorkrsLib for the other two, and app.js publishes `helpers` as window.WorkrsUI.
/* exported WorkrsLib */
'use strict';
const WorkrsLib = (function () {
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
    if ((v.name || '').trim()) spec.name = v.name.trim();
    const labels = parseLabels(v.labels || '');
    if (Object.keys(labels).length) spec.labels = labels;
    return spec;
  }

  /** `k=v` per line (or comma); the node checks names and sizes (400 INVALID_SPEC). */
  function parseLabels(text) {
    const labels = {};
    for (const item of text.split(/[\n,]/).map((l) => l.trim()).filter((l) => l !== '')) {
      const eq = item.indexOf('=');
      if (eq <= 0) throw new Error(`label ${JSON.stringify(item)} is not key=value`);
      const key = item.slice(0, eq).trim();
      if (Object.prototype.hasOwnProperty.call(labels, key)) throw new Error(`label ${key} is given twice`);
      labels[key] = item.slice(eq + 1).trim();
    }
    return labels;
  }

  /** A job's labels as `k=v k=v`, or '-'. */
  function fmtLabels(labels) {
    const entries = Object.entries(labels || {});
    return entries.length === 0 ? '-' : entries.map(([k, v]) => `${k}=${v}`).join(' ');
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
  const NEEDS = { submit: 'submit', cancel: 'submit', 'import-image': 'admin', tokens: 'admin' };

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

  // ------------------------------------------------------------------ the log pane

  /** Characters the log pane keeps; a long-running job's log is cut from the front past it. */
  const LOG_PANE_MAX_CHARS = 1 << 20;

  /**
   * The log pane's text after `chunk` arrives: `shown` + `chunk`, cut at a line start to
   * the last `max` characters once it holds twice that (so a cut is rare), with a first
   * line saying how much went and where the whole log is. `cutChars` counts what went
   * before. Returns { text, cutChars }.
   */
  function appendBounded(shown, cutChars, chunk, max = LOG_PANE_MAX_CHARS) {
    const body = shown.startsWith(CUT_MARK) ? shown.slice(shown.indexOf('\n') + 1) : shown;
    let text = body + chunk;
    let cut = cutChars;
    if (text.length > 2 * max) {
      let from = text.length - max;
      const nl = text.indexOf('\n', from);
      if (nl !== -1 && nl < text.length - 1) from = nl + 1;
      cut += from;
      text = text.slice(from);
    }
    return { text: cut > 0 ? `${CUT_MARK} ${fmtBytes(cut)} of earlier output not shown: the whole log is in the result, or workrs logs JOB]\n${text}` : text, cutChars: cut };
  }
  const CUT_MARK = '[…';

  const helpers = { parseDuration, splitCommand, parseEnv, parseLabels, fmtLabels, buildSpec, fmtBytes, fmtDuration, timeline, can, formatFingerprint, buildTokenRequest, appendBounded };
  return Object.assign({ fmtTime, ROLES, NEEDS, helpers }, helpers);
})();
