// The web UI served at GET /: a job list, a submit form with file upload, a job page
// (fields, attempts, checkpoint timeline, logs followed while the job runs), the
// cluster's nodes, its imported images and, for admins, the API tokens. Plain browser JavaScript over the
// public HTTP API (docs/api.md): no framework, no build step. Everything from the API
// reaches the page as text (textContent, SVG attributes), never as markup.
//
// Before any view it asks GET /v1/acl/self who it is: the role decides which controls
// exist at all (the API refuses the rest anyway; the UI just does not offer them), and
// the answer carries the CA fingerprint shown in the header. A dev-mode node answers
// without a token, so the page only asks for one when the node says 401.
//
// Three plain scripts, loaded in order by index.html: lib.js (pure helpers), dom.js
// (API client, element builders, session) and this one (the views, the router, the
// start). Each is one IIFE; lib.js and dom.js hand their parts on as the script-scope
// constants WorkrsLib and WorkrsDom.
/* global WorkrsLib, WorkrsDom */
'use strict';
(function (lib, dom) {
  const { can, ROLES, fmtBytes, fmtDuration, fmtTime, buildSpec, buildTokenRequest, fmtLabels } = lib;
  const { api, getJson, h, stateBadge, showError, field, onLeave, leaveView, every, timelineSvg, notAllowed } = dom;

  // ------------------------------------------------------------------ views

  /** Rows per page of the job list unless the address says (`limit=`, 1 to 1000 as the API takes). */
  const JOB_PAGE_SIZE = 100;
  const PAGE_SIZES = [20, 50, 100, 500];

  /**
   * The pages walked to reach the shown one, for "Newer": each entry the cursor of a
   * page (null: the first) and the `next` it gave. Valid only while the filter is the
   * same and its last `next` is the page shown (the address may have been typed).
   */
  let jobTrail = { filter: null, steps: [] };

  function jobsView(root, query) {
    const self = dom.self();
    const state = query.get('state') || '';
    const limitAsked = Number(query.get('limit'));
    const limit = Number.isInteger(limitAsked) && limitAsked >= 1 && limitAsked <= 1000 ? limitAsked : JOB_PAGE_SIZE;
    const after = query.get('after');
    const filter = `${state}|${limit}`;
    if (jobTrail.filter !== filter) jobTrail = { filter, steps: [] };
    const steps = jobTrail.steps;
    const trailOk = after === null ? steps.length === 0 : steps.length > 0 && steps[steps.length - 1].next === after;
    if (!trailOk) steps.length = 0;
    const go = (cursor) => {
      const q = new URLSearchParams();
      if (state) q.set('state', state);
      if (limit !== JOB_PAGE_SIZE) q.set('limit', String(limit));
      if (cursor) q.set('after', cursor);
      const qs = q.toString();
      location.hash = qs ? `#/?${qs}` : '#/';
    };

    const stateSel = h('select', { 'aria-label': 'state', onchange: () => {
      const q = new URLSearchParams();
      if (stateSel.value) q.set('state', stateSel.value);
      if (limit !== JOB_PAGE_SIZE) q.set('limit', String(limit));
      location.hash = q.toString() ? `#/?${q}` : '#/';
    } }, ['', 'pending', 'running', 'succeeded', 'failed', 'cancelled'].map((s) => h('option', { value: s, selected: s === state, text: s || 'all states' })));
    const sizes = PAGE_SIZES.includes(limit) ? PAGE_SIZES : [...PAGE_SIZES, limit].sort((a, b) => a - b);
    const sizeSel = h('select', { 'aria-label': 'jobs per page', id: 'page-size', onchange: () => {
      const q = new URLSearchParams();
      if (state) q.set('state', state);
      if (Number(sizeSel.value) !== JOB_PAGE_SIZE) q.set('limit', sizeSel.value);
      location.hash = q.toString() ? `#/?${q}` : '#/';
    } }, sizes.map((n) => h('option', { value: n, selected: n === limit, text: `${n} per page` })));
    const newest = h('button.secondary', { type: 'button', id: 'page-newest', text: '⇤ Newest', disabled: after === null, onclick: () => {
      steps.length = 0;
      go(null);
    } });
    const newer = h('button.secondary', { type: 'button', id: 'page-newer', text: '← Newer', disabled: after === null, onclick: () => {
      const step = steps.pop();
      go(step ? step.after : null);
    } });
    let next = null;
    const older = h('button.secondary', { type: 'button', id: 'page-older', text: 'Older →', disabled: true, onclick: () => {
      if (next === null) return;
      steps.push({ after, next });
      go(next);
    } });
    const where = h('span.muted', { id: 'page-where' });
    const body = h('tbody');
    root.append(
      h('h1', { text: 'Jobs' }),
      h('div.toolbar', {}, stateSel, sizeSel, can(self, 'submit') ? h('a', { href: '#/submit', text: 'Submit a job' }) : null),
      h('table', {}, h('thead', {}, h('tr', {}, ['Job', 'Name', 'State', 'Image', 'Command', 'Node', 'Epoch', 'Checkpoints', 'Created'].map((c) => h('th', { text: c })))), body),
      h('div.toolbar.pager', {}, newest, newer, older, where),
    );
    every(2000, async () => {
      // Rows are summaries (no spec); a page of `limit`, `next` the cursor of the older ones.
      const q = new URLSearchParams({ limit: String(limit), stale: '1' });
      if (state) q.set('state', state);
      if (after !== null) q.set('after', after);
      const list = await getJson(`/v1/jobs?${q}`);
      const jobs = list.jobs;
      next = list.next;
      older.disabled = next === null;
      body.replaceChildren(...jobs.map((j) => h('tr', { 'data-job': j.id },
        h('td', {}, h('a.mono', { href: `#/jobs/${encodeURIComponent(j.id)}`, text: j.id })),
        h('td', { text: j.name || '-', title: fmtLabels(j.labels) }),
        h('td', {}, stateBadge(j.state)),
        h('td.mono', { text: j.image }),
        h('td.mono', { text: j.commandLine }),
        h('td', { text: j.node || '-' }),
        h('td', { text: j.epoch }),
        h('td', { text: j.checkpointCount }),
        h('td.muted', { text: fmtTime(j.createdAt) }),
      )));
      if (jobs.length === 0) body.append(h('tr', {}, h('td.muted', { colspan: 9, text: after === null ? 'no jobs' : 'no older jobs' })));
      const first = after === null ? 1 : steps.length > 0 ? steps.length * limit + 1 : null;
      where.textContent = jobs.length === 0 ? '' : first === null ? `${jobs.length} jobs` : `jobs ${first}–${first + jobs.length - 1}${next === null ? '' : ', older ones follow'}`;
      showError(null);
    });
  }

  /** The cluster's imported images (GET /v1/images); admins import a `docker save` tar here too. */
  function imagesView(root) {
    const self = dom.self();
    const body = h('tbody');
    const load = async () => {
      const list = await getJson('/v1/images?stale=1');
      body.replaceChildren(...list.images.map((img) => h('tr', { 'data-image': img.blob },
        h('td.mono', { text: img.name === null ? '(no name: newer imports took it)' : img.name }),
        h('td.mono', { title: img.blob, text: img.blob.slice(0, 19) }),
        h('td', { text: fmtBytes(img.bytes) }),
        h('td', { text: img.holders.join(', ') || '-' }),
        h('td.muted', { text: fmtTime(img.addedAt) }))));
      if (list.images.length === 0) body.append(h('tr', {}, h('td.muted', { colspan: 5, text: 'no imported images (the base images of each box are there without import)' })));
      showError(null);
    };
    root.append(h('h1', { text: 'Images' }));
    if (can(self, 'import-image')) {
      const file = h('input', { id: 'i-file', type: 'file', name: 'tar', accept: '.tar,application/x-tar', required: true });
      const replace = h('input', { id: 'i-replace', type: 'checkbox', name: 'replace' });
      const button = h('button', { type: 'submit', text: 'Import' });
      const done = h('div', { id: 'import-result' });
      const form = h('form.submit', { id: 'image-import-form' },
        field('docker save tar', file, 'sent as it is read from disk; every node that runs a job of it loads it'),
        field('Replace', replace, 'names the cluster already has may move to this image'),
        h('div.actions', {}, button));
      form.addEventListener('submit', async (ev) => {
        ev.preventDefault();
        const tar = file.files && file.files[0];
        if (!tar) return;
        button.disabled = true;
        button.textContent = 'Importing…';
        try {
          const r = await api('POST', `/v1/images${replace.checked ? '?replace=1' : ''}`, { body: tar, headers: { 'content-type': 'application/x-tar' } });
          const got = await r.json();
          done.replaceChildren(h('p', { text: `Imported ${got.images.join(', ') || 'an image without names'} (${fmtBytes(got.bytes)}), held by ${got.holders.join(', ')}.` }));
          file.value = '';
          await load();
        } catch (err) {
          showError(err);
        } finally {
          button.disabled = false;
          button.textContent = 'Import';
        }
      });
      root.append(done, form, h('h2', { text: 'Imported images' }));
    }
    root.append(h('table', {}, h('thead', {}, h('tr', {}, ['Name', 'Blob', 'Size', 'Held by', 'Imported'].map((c) => h('th', { text: c })))), body));
    every(5000, load);
  }

  function submitView(root) {
    const self = dom.self();
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
    const name = h('input', { id: 'f-name', type: 'text', name: 'name', maxlength: 63, placeholder: 'optional, unique among open jobs' });
    const labels = h('textarea', { id: 'f-labels', name: 'labels', placeholder: 'key=value, one per line' });
    const button = h('button', { type: 'submit', text: 'Submit' });
    const form = h('form.submit', { id: 'submit-form' },
      field('Name', name, 'refer to the job by it (workrs status NAME)'), field('Labels', labels),
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
        spec = buildSpec({ image: image.value, command: command.value, env: env.value, outputs: outputs.value, estimate: estimate.value, checkpoint: checkpoint.value, interval: interval.value, memoryMB: memory.value, cpus: cpus.value, timeout: timeout.value, name: name.value, labels: labels.value }, chosen.map((f) => f.name));
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

  function jobView(root, id) {
    const self = dom.self();
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
        // Bounded: a job that prints for days must not grow the page without end.
        let pane = { text: '', cutChars: 0 };
        logs.textContent = '';
        const show = (chunk) => {
          pane = lib.appendBounded(pane.text, pane.cutChars, chunk);
          logs.textContent = pane.text;
          logs.scrollTop = logs.scrollHeight;
        };
        for (;;) {
          const { done, value } = await reader.read();
          if (done || stream.signal.aborted) break;
          show(decoder.decode(value, { stream: true }));
        }
        if (!stream.signal.aborted) show(decoder.decode());
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
      // The browser's own download, streamed to disk (dom.js): never a Blob of the whole tar.
      const result = h('button.secondary', { type: 'button', id: 'download-result', text: 'Download result', disabled: !final || job.state === 'cancelled', onclick: () => dom.downloadResult(id) });
      head.replaceChildren(h('h1', {}, h('span.mono', { text: job.id }), ' ', stateBadge(job.state)), h('div.toolbar', {}, cancel, result));
      const policy = job.policy || {};
      fields.replaceChildren(h('dl.fields', {},
        h('dt', { text: 'Name' }), h('dd', { text: job.spec.name || '-' }),
        h('dt', { text: 'Labels' }), h('dd.mono', { text: fmtLabels(job.spec.labels) }),
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
        h('td', { text: n.id + (n.id === c.leader ? ' (leader)' : '') }), h('td', { text: n.role }), h('td', {}, stateBadge(n.state), n.draining ? h('span.muted', { text: ' draining' }) : null),
        h('td.mono', { text: n.api || '-' }), h('td', { text: `${n.running}/${n.slots}` }), h('td', { text: n.lastSeenMs === null ? '-' : `${fmtDuration(n.lastSeenMs)} ago` }))));
      showError(null);
    });
  }

  /** Admins: the API tokens (never their secrets), a form that makes one and shows it once, and revocation. */
  function tokensView(root) {
    const self = dom.self();
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
    if (!dom.self()) return; // identify() routes once it knows who we are
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
    } else if (path === '/images') {
      nav = 'images';
      imagesView(root);
    } else if (path === '/tokens') {
      nav = 'tokens';
      tokensView(root);
    } else jobsView(root, query);
    for (const a of document.querySelectorAll('nav a')) a.classList.toggle('active', a.getAttribute('data-nav') === nav);
  }

  function start() {
    dom.startSession(route);
    window.addEventListener('hashchange', route);
    void dom.identify();
  }

  // Published last: its presence says all three scripts ran (the tests wait for it).
  window.WorkrsUI = lib.helpers;

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
})(WorkrsLib, WorkrsDom);
