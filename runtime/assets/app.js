// AlephAuto dashboard. Plain JavaScript, no dependencies, no build step.
// Every piece of text from the server goes into the DOM through textContent or
// createTextNode (see `h`); nothing is ever parsed as HTML.
'use strict';

(() => {
  const KEY_STORAGE = 'alephauto.apiKey';
  // The live feed's subprotocols: the server answers WS_PROTOCOL; the key rides in the
  // second one because a browser cannot set headers on a WebSocket (never in the URL).
  const WS_PROTOCOL = 'alephauto.v1';
  const WS_KEY_PROTOCOL_PREFIX = 'alephauto.key.';
  // The key travels hex-encoded in the subprotocol: `+`, `/` and `=` are not token characters.
  const hexOf = (text) => Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, '0')).join('');
  const TERMINAL = new Set(['completed', 'failed', 'cancelled']);
  const MAX_ACTIVITY = 200;
  const MAX_RECENT = 30;

  const state = {
    pipelines: [],
    jobs: new Map(),
    queue: null,
    health: null,
    activity: [],
    ws: null,
    conn: 'connecting',
    retryDelay: 1000,
    retryTimer: null,
    retryAt: 0,
    pingTimer: null,
    openJobId: null,
    openLogs: null,
    openArtifacts: null,
    openPreview: null,
    reports: null,
    schedules: null,
    logsTimer: null,
    keyPrompt: null,
    filterPipeline: '',
    filterStatus: '',
  };

  // ---------------------------------------------------------------- DOM helpers

  const $ = (id) => document.getElementById(id);

  function safeUrl(url) {
    const s = String(url);
    return /^(https?:\/\/|\/|#)/i.test(s) ? s : null;
  }

  /** Creates an element; text children become text nodes, never markup. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v == null || v === false) continue;
        if (k === 'class') el.className = v;
        else if (k === 'text') el.textContent = String(v);
        else if (k === 'dataset') Object.assign(el.dataset, v);
        else if (k === 'value') el.value = v;
        else if (k === 'checked') el.checked = !!v;
        else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
        else if (k === 'href' || k === 'src') {
          const u = safeUrl(v);
          if (u) el.setAttribute(k, u);
        } else el.setAttribute(k, v === true ? '' : String(v));
      }
    }
    append(el, children);
    return el;
  }

  function append(el, children) {
    for (const c of children.flat(Infinity)) {
      if (c == null || c === false) continue;
      el.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return el;
  }

  function pill(status) {
    const s = String(status || 'unknown');
    return h('span', { class: `pill pill-${s.replace(/[^a-z]/g, '')}`, dataset: { status: s } }, s);
  }

  function progressBar(job) {
    const pct = clampPct(job.progress && job.progress.percent);
    const fill = h('div', { class: `bar-fill ${job.status}` });
    fill.style.width = `${job.status === 'completed' ? 100 : pct}%`;
    return h('div', { class: 'progress' },
      h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct }, fill),
      h('span', { class: 'progress-text' }, `${job.status === 'completed' ? 100 : pct}%`));
  }

  const clampPct = (p) => Math.max(0, Math.min(100, Math.round(Number(p) || 0)));

  function fmtTime(ts) {
    if (!ts) return '—';
    const d = new Date(ts);
    return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString();
  }

  function fmtAgo(ts) {
    if (!ts) return '—';
    const d = new Date(ts).getTime();
    if (Number.isNaN(d)) return String(ts);
    const s = Math.round((Date.now() - d) / 1000);
    if (s < 5) return 'just now';
    if (s < 60) return `${s}s ago`;
    if (s < 3600) return `${Math.floor(s / 60)}m ago`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
    return `${Math.floor(s / 86400)}d ago`;
  }

  function fmtDuration(from, to) {
    if (!from || !to) return '—';
    const ms = new Date(to).getTime() - new Date(from).getTime();
    if (!(ms >= 0)) return '—';
    if (ms < 1000) return `${ms} ms`;
    if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
    const m = Math.floor(ms / 60000);
    return `${m}m ${Math.round((ms % 60000) / 1000)}s`;
  }

  function timeEl(ts, relative) {
    return h('time', { datetime: ts || '', title: ts ? fmtTime(ts) : '' }, relative ? fmtAgo(ts) : fmtTime(ts));
  }

  function toast(message, kind, jobId) {
    const el = h('div', { class: `toast ${kind || ''}`, role: 'status' }, message);
    if (jobId) {
      el.append(' ');
      el.append(h('a', { href: `#/job/${encodeURIComponent(jobId)}` }, 'View job'));
    }
    $('toasts').append(el);
    setTimeout(() => el.remove(), kind === 'error' ? 9000 : 5000);
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  // The key lives in this tab's sessionStorage: it goes when the tab does.
  const apiKey = () => sessionStorage.getItem(KEY_STORAGE) || '';
  const setApiKey = (v) => { if (v) sessionStorage.setItem(KEY_STORAGE, v); else sessionStorage.removeItem(KEY_STORAGE); };

  /** The login URL the server prints carries the key in the fragment (`#key=...`), which
   *  the browser never sends: keep it for this tab and take it out of the address bar. */
  function takeKeyFromFragment() {
    const m = location.hash.match(/^#key=([^&]+)$/);
    if (!m) return;
    try { setApiKey(decodeURIComponent(m[1])); } catch (_) { /* malformed: ignore */ }
    history.replaceState(null, '', location.pathname + location.search);
  }

  async function api(method, path, body) {
    const headers = { Accept: 'application/json' };
    // The server takes only JSON on actions (a page elsewhere cannot send that without asking).
    if (body === undefined && method !== 'GET') body = {};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const key = apiKey();
    if (key && method !== 'GET') headers['X-API-Key'] = key;
    let res;
    try {
      res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store' });
    } catch (e) {
      throw new ApiError(0, 'NETWORK', `Cannot reach the server (${e.message})`);
    }
    let data = null;
    try { data = await res.json(); } catch (_) { /* empty or not JSON */ }
    if (!res.ok) {
      throw new ApiError(res.status, (data && data.code) || `HTTP_${res.status}`, (data && data.error) || res.statusText || `HTTP ${res.status}`);
    }
    return data;
  }

  /** A mutating call: a 401/403 asks for the API key and tries again. */
  async function mutate(method, path, body) {
    for (;;) {
      try {
        return await api(method, path, body);
      } catch (e) {
        if (e.status !== 401 && e.status !== 403) throw e;
        const msg = e.status === 401 ? 'This server needs an API key for that action.' : 'The saved API key was rejected. Enter the right one.';
        if (!(await askForKey(msg))) throw e;
      }
    }
  }

  // ---------------------------------------------------------------- API key

  function askForKey(message) {
    if (state.keyPrompt) return state.keyPrompt;
    state.keyPrompt = new Promise((resolve) => {
      const input = h('input', { type: 'password', id: 'api-key-input', autocomplete: 'off', placeholder: 'API key', value: apiKey() });
      input.style.width = '100%';
      const done = (ok) => {
        $('key-overlay').hidden = true;
        $('key-modal').replaceChildren();
        state.keyPrompt = null;
        resolve(ok);
      };
      const form = h('form', {
        onsubmit: (ev) => {
          ev.preventDefault();
          const v = input.value.trim();
          setApiKey(v);
          done(!!v);
          if (state.conn !== 'live') connectWs();
        },
      },
      h('div', { class: 'modal-head' }, h('h2', { id: 'key-title' }, 'API key required'), h('p', null, message)),
      h('div', { class: 'modal-body' },
        h('div', { class: 'field' },
          h('label', { for: 'api-key-input' }, 'API key'),
          input,
          h('span', { class: 'help' }, 'Kept for this tab only (sessionStorage) and sent with actions and the live feed.'))),
      h('div', { class: 'modal-foot' },
        apiKey() ? h('button', { type: 'button', class: 'btn btn-danger', onclick: () => { setApiKey(''); input.value = ''; } }, 'Forget key') : null,
        h('button', { type: 'button', class: 'btn', onclick: () => done(false) }, 'Cancel'),
        h('button', { type: 'submit', class: 'btn btn-primary', id: 'api-key-save' }, 'Save key')));
      state.keyCancel = () => done(false);
      $('key-modal').replaceChildren(form);
      $('key-overlay').hidden = false;
      input.focus();
    });
    return state.keyPrompt;
  }

  // ---------------------------------------------------------------- modal & drawer

  let modalOnClose = null;
  function openModal(content, onClose) {
    const modal = $('modal');
    modal.replaceChildren(content);
    modalOnClose = onClose || null;
    $('modal-overlay').hidden = false;
  }
  function closeModal() {
    $('modal-overlay').hidden = true;
    $('modal').replaceChildren();
    modalOnClose = null;
  }

  // ---------------------------------------------------------------- state updates

  function rank(job) { return TERMINAL.has(job.status) ? 2 : job.status === 'running' ? 1 : 0; }

  /** Merges a snapshot from the REST API without undoing newer live events. */
  function mergeSnapshot(job) {
    const cur = state.jobs.get(job.id);
    if (cur && (rank(cur) > rank(job) && (cur.attempt || 1) >= (job.attempt || 1))) return;
    if (cur && cur.status === job.status && job.status === 'running' && cur.attempt === job.attempt &&
        clampPct(cur.progress && cur.progress.percent) > clampPct(job.progress && job.progress.percent)) {
      job.progress = cur.progress;
    }
    state.jobs.set(job.id, job);
  }

  function applyJobEvent(msg) {
    const id = msg.jobId;
    if (!id) return;
    const job = state.jobs.get(id) || {
      id, pipelineId: msg.pipelineId, status: msg.status || 'queued', data: null,
      createdAt: msg.createdAt || msg.timestamp, progress: { percent: 0, message: '' }, attempt: 1,
    };
    if (rank(job) === 2 && msg.type !== 'job:retrying' && !TERMINAL.has(msg.status)) return; // stale
    for (const k of ['status', 'progress', 'result', 'error', 'git', 'data', 'createdAt', 'startedAt', 'completedAt', 'attempt', 'workerVersion', 'componentDigest']) {
      if (msg[k] !== undefined) job[k] = msg[k];
    }
    if (msg.type === 'job:started' && msg.progress === undefined) job.progress = { percent: 0, message: '' };
    job._flash = msg.type === 'job:created' || TERMINAL.has(job.status);
    state.jobs.set(id, job);
    markDirty('jobs');
    if (msg.type !== 'job:progress') {
      refreshPipelinesSoon();
      refreshStatusSoon();
    }
    if (job.status === 'completed') refreshReportsSoon();
    if (state.openJobId === id) {
      markDirty('detail');
      if (TERMINAL.has(job.status)) loadDetail(id);
    }
  }

  function addActivity(entry) {
    state.activity.unshift(entry);
    if (state.activity.length > MAX_ACTIVITY) state.activity.length = MAX_ACTIVITY;
    const list = $('activity');
    list.prepend(activityItem(entry, true));
    while (list.children.length > MAX_ACTIVITY) list.lastChild.remove();
    $('activity-empty').hidden = true;
  }

  function activityItem(e, fresh) {
    const kind = String(e.event || '').replace(/^job:/, '').replace(/[^a-z]/g, '');
    return h('li', {
      class: `ev-${kind}${fresh ? ' new' : ''}`,
      dataset: { jobId: e.jobId || '', event: e.event || '', source: e.source || '' },
      title: e.jobId ? 'Open job' : null,
      onclick: () => e.jobId && openJob(e.jobId),
    },
    h('span', { class: 'dot' }),
    h('span', { class: 'msg' }, e.message),
    h('time', { datetime: e.timestamp || '', title: fmtTime(e.timestamp) }, fmtClock(e.timestamp)));
  }

  function fmtClock(ts) {
    const d = new Date(ts);
    if (!ts || Number.isNaN(d.getTime())) return '';
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay ? d.toLocaleTimeString() : d.toLocaleString();
  }

  function pruneJobs() {
    const terminal = [...state.jobs.values()].filter((j) => TERMINAL.has(j.status));
    if (terminal.length <= 300) return;
    terminal.sort((a, b) => jobTime(b) - jobTime(a));
    for (const j of terminal.slice(300)) if (j.id !== state.openJobId) state.jobs.delete(j.id);
  }

  const jobTime = (j) => new Date(j.completedAt || j.startedAt || j.createdAt || 0).getTime() || 0;

  // ---------------------------------------------------------------- loading

  function throttle(fn, ms) {
    let timer = null;
    let again = false;
    const run = async () => {
      again = false;
      try { await fn(); } catch (e) { console.warn(e); }
      timer = setTimeout(() => { timer = null; if (again) schedule(); }, ms);
    };
    const schedule = () => { if (timer) again = true; else { timer = -1; run(); } };
    return schedule;
  }

  async function loadPipelines() {
    const data = await api('GET', '/api/pipelines');
    state.pipelines = data.pipelines || [];
    markDirty('pipelines');
    // The listing does not wait for a worker still initialising: ask again until it is done.
    if (state.pipelines.some((p) => p.state === 'initialising')) setTimeout(() => refreshPipelinesSoon(), 2000);
  }

  async function loadStatus() {
    const [status, health] = await Promise.all([api('GET', '/api/status'), api('GET', '/health').catch(() => null)]);
    state.queue = status.queue;
    if (health) state.health = health;
    for (const j of [...(status.activeJobs || []), ...(status.queuedJobs || [])]) mergeSnapshot(j);
    markDirty('header');
    markDirty('jobs');
    return status;
  }

  async function loadJobs() {
    const data = await api('GET', '/api/jobs?limit=50');
    for (const j of data.jobs || []) mergeSnapshot(j);
    markDirty('jobs');
    return data.jobs || [];
  }

  const refreshPipelinesSoon = throttle(loadPipelines, 1200);
  const refreshStatusSoon = throttle(loadStatus, 1200);

  /** Full refresh after (re)connecting: nothing missed while offline stays stale. */
  async function resync() {
    try {
      const [status, recent] = await Promise.all([loadStatus(), loadJobs(), loadPipelines(), loadReports(), loadSchedules()]);
      const seen = new Set([...(status.activeJobs || []), ...(status.queuedJobs || []), ...recent].map((j) => j.id));
      const stale = [...state.jobs.values()].filter((j) => !TERMINAL.has(j.status) && !seen.has(j.id)).slice(0, 20);
      await Promise.all(stale.map((j) => api('GET', `/api/jobs/${encodeURIComponent(j.id)}`)
        .then((fresh) => state.jobs.set(fresh.id, fresh))
        .catch((e) => { if (e.status === 404) state.jobs.delete(j.id); })));
      if (state.activity.length === 0) seedActivity(recent);
      if (state.openJobId) loadDetail(state.openJobId);
      markDirty('jobs');
      setBanner(null);
    } catch (e) {
      setBanner(`Could not load data: ${e.message}`);
    }
  }

  function seedActivity(jobs) {
    const items = jobs.filter((j) => TERMINAL.has(j.status)).slice(0, 15).reverse();
    for (const j of items) {
      addActivity({
        event: `job:${j.status}`, jobId: j.id, source: 'history', timestamp: j.completedAt || j.createdAt,
        message: `${j.pipelineId} job ${j.id} ${j.status}${j.status === 'failed' && j.error ? `: ${j.error.message}` : ''}`,
      });
    }
    for (const li of $('activity').children) li.classList.remove('new');
  }

  function setBanner(text) {
    const b = $('banner');
    b.textContent = text || '';
    b.hidden = !text;
  }

  // ---------------------------------------------------------------- WebSocket

  function setConn(conn, text) {
    state.conn = conn;
    $('conn').dataset.state = conn;
    $('conn-text').textContent = text;
  }

  function connectWs() {
    clearTimeout(state.retryTimer);
    clearInterval(state.retryTick);
    if (state.ws) {
      const old = state.ws;
      state.ws = null;
      try { old.close(); } catch (_) { /* already closed */ }
    }
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const key = apiKey();
    const url = `${proto}//${location.host}/ws`;
    setConn('connecting', 'Connecting…');
    let ws;
    try {
      ws = new WebSocket(url, key ? [WS_PROTOCOL, WS_KEY_PROTOCOL_PREFIX + hexOf(key)] : [WS_PROTOCOL]);
    } catch (e) {
      // A key with characters no key holds cannot even be offered: ask for another.
      if (key && e.name === 'SyntaxError') {
        setConn('auth', 'API key needed');
        askForKey('That API key cannot be sent: keys hold only printable ASCII without spaces.').then((ok) => ok && connectWs());
      } else {
        scheduleReconnect();
      }
      return;
    }
    state.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      ws.send(JSON.stringify({ type: 'subscribe', channels: ['jobs', 'activity'] }));
      clearInterval(state.pingTimer);
      state.pingTimer = setInterval(() => { if (ws.readyState === 1) ws.send('{"type":"ping"}'); }, 25000);
    };
    ws.onmessage = (ev) => {
      let msg;
      try { msg = JSON.parse(ev.data); } catch (_) { return; }
      handleMessage(msg);
    };
    ws.onclose = () => {
      if (state.ws !== ws) return;
      state.ws = null;
      clearInterval(state.pingTimer);
      if (opened) { scheduleReconnect(); return; }
      // The handshake failed: find out whether the key is the problem.
      probeAuth().then((status) => {
        if (status === 401 || status === 403) {
          setConn('auth', 'API key needed');
          askForKey(status === 401 ? 'This server needs an API key.' : 'The saved API key was rejected.').then((ok) => {
            if (ok) connectWs(); else setConn('auth', 'API key needed — click to enter');
          });
        } else {
          scheduleReconnect();
        }
      });
    };
  }

  async function probeAuth() {
    const key = apiKey();
    try {
      const res = await fetch('/ws', { cache: 'no-store', headers: key ? { 'X-API-Key': key } : {} });
      return res.status;
    } catch (_) {
      return 0;
    }
  }

  function scheduleReconnect() {
    const delay = Math.round(Math.min(30000, state.retryDelay) * (0.8 + Math.random() * 0.4));
    state.retryDelay = Math.min(30000, state.retryDelay * 2);
    state.retryAt = Date.now() + delay;
    const tick = () => {
      const s = Math.max(0, Math.ceil((state.retryAt - Date.now()) / 1000));
      setConn('reconnecting', `Reconnecting in ${s}s…`);
    };
    tick();
    clearInterval(state.retryTick);
    state.retryTick = setInterval(tick, 1000);
    clearTimeout(state.retryTimer);
    state.retryTimer = setTimeout(() => { clearInterval(state.retryTick); connectWs(); }, delay);
  }

  function handleMessage(msg) {
    switch (msg.type) {
      case 'connected':
        state.retryDelay = 1000;
        setConn('live', 'Live');
        break;
      case 'subscribed':
        resync();
        break;
      case 'activity:new':
        addActivity({ event: msg.event, jobId: msg.jobId, message: msg.message, timestamp: msg.timestamp, source: 'ws' });
        break;
      case 'error':
        console.warn('feed error:', msg.error);
        break;
      case 'pong':
      case 'unsubscribed':
        break;
      default:
        if (typeof msg.type === 'string' && msg.type.startsWith('job:')) {
          applyJobEvent(msg);
          // A schedule shows its last job's outcome.
          if (TERMINAL.has(msg.status) && (scheduleJobIds().has(msg.jobId) || scheduleRunGoing())) refreshSchedulesSoon();
        }
        if (typeof msg.type === 'string' && msg.type.startsWith('schedule:')) refreshSchedulesSoon();
    }
  }

  // ---------------------------------------------------------------- rendering

  const dirty = new Set();
  let renderTimer = null;
  function markDirty(what) {
    dirty.add(what);
    if (!renderTimer) renderTimer = setTimeout(flush, 30);
  }
  function flush() {
    renderTimer = null;
    const parts = [...dirty];
    dirty.clear();
    for (const p of parts) {
      try {
        ({ header: renderHeader, pipelines: renderPipelines, jobs: renderJobs, detail: renderDetail, reports: renderReports, schedules: renderSchedules })[p]();
      } catch (e) {
        console.error(`render ${p}`, e);
      }
    }
  }

  function renderHeader() {
    const q = state.queue || { active: 0, queued: 0, capacity: 0 };
    const stat = (n, label) => h('span', { class: 'stat' }, h('b', null, n), h('span', null, label));
    const parts = [stat(`${q.active}/${q.capacity}`, 'running'), stat(q.queued, 'queued'), stat(state.pipelines.length, 'pipelines')];
    if (state.health) parts.push(stat(`v${state.health.version}`, `up ${fmtUptime(state.health.uptimeSeconds)}`));
    $('queue-stats').replaceChildren(...parts);
  }

  function fmtUptime(s) {
    s = Number(s) || 0;
    if (s < 60) return `${s}s`;
    if (s < 3600) return `${Math.floor(s / 60)}m`;
    if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
    return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
  }

  function renderPipelines() {
    const box = $('pipelines');
    $('pipelines-count').textContent = state.pipelines.length ? `${state.pipelines.length} configured` : '';
    renderHeader();
    const sel = $('filter-pipeline');
    const current = sel.value;
    sel.replaceChildren(h('option', { value: '' }, 'All'), ...state.pipelines.map((p) => h('option', { value: p.id }, p.id)));
    sel.value = current;
    if (!state.pipelines.length) {
      box.replaceChildren(h('p', { class: 'empty' }, 'No pipelines are configured.'));
      return;
    }
    box.replaceChildren(...state.pipelines.map((p) => {
      const count = (n, label, cls) => h('div', { class: `count count-${cls}` }, h('b', null, n ?? 0), h('span', null, label));
      const meta = [
        h('span', null, `Last run ${p.lastRun ? fmtAgo(p.lastRun) : 'never'}`),
        p.maxConcurrent ? h('span', null, `· ${p.maxConcurrent} slot${p.maxConcurrent === 1 ? '' : 's'}`) : null,
        p.gitWorkflow ? h('span', { class: 'badge' }, 'git workflow') : null,
        p.workerLoaded ? null : h('span', { class: 'badge badge-warn' }, 'worker not loaded'),
        p.cancelled ? h('span', null, `· ${p.cancelled} cancelled`) : null,
      ];
      return h('article', { class: 'pipeline', dataset: { pipelineId: p.id } },
        h('div', { class: 'pipeline-head' },
          h('div', null,
            h('div', { class: 'pipeline-name' }, p.name || p.id),
            h('div', { class: 'pipeline-id' }, p.id, p.version ? ` · v${p.version}` : '')),
          pill(p.status)),
        p.description ? h('p', { class: 'pipeline-desc' }, p.description) : null,
        h('div', { class: 'counts' },
          count(p.queued, 'Queued', 'queued'), count(p.running, 'Running', 'running'),
          count(p.completed, 'Done', 'completed'), count(p.failed, 'Failed', 'failed')),
        h('div', { class: 'pipeline-meta' }, meta),
        p.lastError ? h('div', { class: 'pipeline-error' }, p.lastError) : null,
        h('div', { class: 'pipeline-actions' },
          h('button', {
            type: 'button', class: 'btn btn-primary btn-small', dataset: { trigger: p.id },
            // The form is generated from the worker's schema: wait until the worker has loaded.
            disabled: p.status === 'disabled' || p.state === 'initialising', onclick: () => openTrigger(p.id),
            title: p.state === 'initialising' ? 'The worker is still loading' : null,
          }, p.state === 'initialising' ? 'Loading…' : 'Trigger…'),
          h('button', {
            type: 'button', class: 'btn btn-small', onclick: () => {
              $('filter-pipeline').value = p.id;
              state.filterPipeline = p.id;
              renderJobs();
              $('recent-title').scrollIntoView({ behavior: 'smooth', block: 'start' });
            },
          }, 'Recent jobs')));
    }));
  }

  const rows = new Map();

  function jobRow(job, kind) {
    const key = `${kind}:${job.id}`;
    let row = rows.get(key);
    if (!row) {
      row = h('tr', { dataset: { jobId: job.id }, onclick: (ev) => { if (!ev.target.closest('button')) openJob(job.id); } });
      rows.set(key, row);
    }
    const sig = JSON.stringify([job.status, job.progress, job.startedAt, job.completedAt, job.error && job.error.message, Math.floor(Date.now() / 10000)]);
    if (row._sig === sig) return row;
    const fresh = row._sig === undefined;
    row._sig = sig;
    const idCell = h('td', null, h('span', { class: 'job-id' }, job.id));
    if (kind === 'active') {
      const bar = progressBar(job);
      const msg = job.progress && job.progress.message;
      const old = row.querySelector('.bar-fill');
      if (old) {
        // Keep the element so the width animates.
        const fill = bar.querySelector('.bar-fill');
        old.className = fill.className;
        old.style.width = fill.style.width;
        fill.replaceWith(old);
      }
      row.replaceChildren(idCell, h('td', null, job.pipelineId), h('td', null, pill(job.status)),
        h('td', { class: 'col-progress' }, bar, msg ? h('div', { class: 'progress-msg' }, msg) : null),
        h('td', null, job.startedAt ? timeEl(job.startedAt, true) : h('span', { class: 'muted' }, `queued ${fmtAgo(job.createdAt)}`)),
        h('td', { class: 'actions' }, h('button', {
          type: 'button', class: 'btn btn-small btn-danger', dataset: { cancel: job.id }, onclick: () => cancelJob(job.id),
        }, 'Cancel')));
    } else {
      const outcome = job.status === 'failed' || job.status === 'cancelled'
        ? h('td', { class: 'outcome error', title: job.error ? job.error.message : '' }, job.error ? job.error.message : job.status)
        : h('td', { class: 'outcome', title: summary(job.result) }, summary(job.result));
      row.replaceChildren(idCell, h('td', null, job.pipelineId), h('td', null, pill(job.status)),
        h('td', null, timeEl(job.completedAt || job.createdAt, true)),
        h('td', null, fmtDuration(job.startedAt, job.completedAt)), outcome,
        h('td', { class: 'actions' }, job.status === 'failed' || job.status === 'cancelled'
          ? h('button', { type: 'button', class: 'btn btn-small', dataset: { retry: job.id }, onclick: () => retryJob(job.id) }, 'Retry')
          : null));
    }
    if (job._flash && !fresh) {
      row.classList.remove('flash');
      void row.offsetWidth;
      row.classList.add('flash');
    }
    return row;
  }

  function summary(v) {
    if (v == null) return '';
    const s = typeof v === 'string' ? v : JSON.stringify(v);
    return s.length > 120 ? `${s.slice(0, 117)}…` : s;
  }

  function renderJobs() {
    pruneJobs();
    const all = [...state.jobs.values()];
    const active = all.filter((j) => !TERMINAL.has(j.status))
      .sort((a, b) => (rank(b) - rank(a)) || (new Date(a.createdAt) - new Date(b.createdAt)));
    const recent = all.filter((j) => TERMINAL.has(j.status))
      .filter((j) => !state.filterPipeline || j.pipelineId === state.filterPipeline)
      .filter((j) => !state.filterStatus || j.status === state.filterStatus)
      .sort((a, b) => jobTime(b) - jobTime(a)).slice(0, MAX_RECENT);
    const activeRows = active.map((j) => jobRow(j, 'active'));
    const recentRows = recent.map((j) => jobRow(j, 'recent'));
    $('active-jobs').tBodies[0].replaceChildren(...activeRows);
    $('recent-jobs').tBodies[0].replaceChildren(...recentRows);
    $('active-empty').hidden = active.length > 0;
    $('active-jobs').hidden = active.length === 0;
    $('recent-empty').hidden = recent.length > 0;
    $('recent-jobs').hidden = recent.length === 0;
    $('active-count').textContent = active.length ? `${active.filter((j) => j.status === 'running').length} running · ${active.filter((j) => j.status === 'queued').length} queued` : '';
    const keep = new Set([...active.map((j) => `active:${j.id}`), ...recent.map((j) => `recent:${j.id}`)]);
    for (const k of rows.keys()) if (!keep.has(k)) rows.delete(k);
    for (const j of all) j._flash = false;
  }

  // ---------------------------------------------------------------- job actions

  async function cancelJob(id) {
    if (!window.confirm(`Cancel job ${id}?`)) return;
    try {
      const job = await mutate('POST', `/api/jobs/${encodeURIComponent(id)}/cancel`);
      mergeSnapshot(job);
      markDirty('jobs');
      toast(`Cancelled ${id}`);
    } catch (e) {
      toast(`Cancel failed: ${e.message}`, 'error');
    }
  }

  async function retryJob(id) {
    try {
      const res = await mutate('POST', `/api/jobs/${encodeURIComponent(id)}/retry`);
      toast(`Retry queued as ${res.jobId}`, '', res.jobId);
    } catch (e) {
      toast(`Retry failed: ${e.message}`, 'error');
    }
  }

  // ---------------------------------------------------------------- job detail

  function openJob(id) {
    const target = `#/job/${encodeURIComponent(id)}`;
    if (location.hash !== target) location.hash = target;
    else showJob(id);
  }

  function showJob(id) {
    state.openJobId = id;
    state.openLogs = null;
    state.openArtifacts = null;
    state.openPreview = null;
    $('drawer-title').textContent = id;
    $('drawer-body').replaceChildren(h('p', { class: 'empty' }, 'Loading…'));
    $('drawer-overlay').hidden = false;
    loadDetail(id);
    clearInterval(state.logsTimer);
    state.logsTimer = setInterval(() => {
      const job = state.jobs.get(id);
      if (state.openJobId === id && job && job.status === 'running') loadLogs(id);
    }, 2500);
  }

  function closeJob() {
    state.openJobId = null;
    clearInterval(state.logsTimer);
    $('drawer-overlay').hidden = true;
    if (location.hash.startsWith('#/job/')) history.replaceState(null, '', location.pathname + location.search);
  }

  async function loadDetail(id) {
    try {
      const job = await api('GET', `/api/jobs/${encodeURIComponent(id)}`);
      if (state.openJobId !== id) return;
      mergeSnapshot(job);
      markDirty('jobs');
      markDirty('detail');
    } catch (e) {
      if (state.openJobId === id) $('drawer-body').replaceChildren(h('div', { class: 'error-box' }, `Could not load job: ${e.message}`));
      return;
    }
    loadLogs(id);
    loadArtifacts(id);
  }

  const artifactUrl = (id, path) =>
    `/api/jobs/${encodeURIComponent(id)}/artifacts/${path.split('/').map(encodeURIComponent).join('/')}`;
  const PREVIEWABLE = /\.(html?|svg|md|txt|json)$/i;

  async function loadArtifacts(id) {
    try {
      const list = await api('GET', `/api/jobs/${encodeURIComponent(id)}/artifacts`);
      if (state.openJobId !== id) return;
      state.openArtifacts = list;
    } catch (e) {
      state.openArtifacts = { error: e.message };
    }
    markDirty('detail');
  }

  /** A guest's file in a frame with no permissions at all (no scripts, an opaque origin);
   *  the server also sends it with `Content-Security-Policy: sandbox`. */
  function previewFrame(url, title) {
    return h('iframe', { class: 'artifact-frame', sandbox: true, src: url, title, referrerpolicy: 'no-referrer' });
  }

  function renderArtifacts(job) {
    const list = state.openArtifacts;
    const head = h('h3', null, 'Artifacts');
    if (!list) return h('div', null, head, h('p', { class: 'empty' }, 'Loading artifacts…'));
    if (list.error) return h('div', null, head, h('div', { class: 'error-box' }, `Could not list artifacts: ${list.error}`));
    if (!list.artifacts.length) return h('div', null, head, h('p', { class: 'empty' }, 'No output files.'));
    const rows = list.artifacts.map((a) => {
      const url = artifactUrl(job.id, a.path);
      return h('li', null,
        h('a', { href: url, target: '_blank', rel: 'noopener noreferrer' }, a.path),
        h('span', { class: 'muted' }, ` ${fmtBytes(a.size)}`),
        PREVIEWABLE.test(a.path)
          ? h('button', { type: 'button', class: 'btn btn-small btn-ghost-dark', dataset: { preview: a.path },
            onclick: () => { state.openPreview = state.openPreview === a.path ? null : a.path; markDirty('detail'); } },
          state.openPreview === a.path ? 'Hide' : 'Preview')
          : null);
    });
    return h('div', { id: 'job-artifacts' }, head,
      list.truncated ? h('p', { class: 'muted' }, 'Only the first 10,000 files are listed.') : null,
      h('ul', { class: 'files' }, rows),
      state.openPreview ? previewFrame(artifactUrl(job.id, state.openPreview), state.openPreview) : null);
  }

  function fmtBytes(n) {
    n = Number(n) || 0;
    if (n < 1024) return `${n} B`;
    if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
    return `${(n / 1048576).toFixed(1)} MiB`;
  }

  async function loadReports() {
    try {
      state.reports = await api('GET', '/api/reports?limit=100');
    } catch (e) {
      state.reports = { error: e.message };
    }
    markDirty('reports');
  }
  const refreshReportsSoon = throttle(loadReports, 3000);

  /** The newest report of each pipeline and of each repository. */
  function renderReports() {
    const box = $('reports');
    const r = state.reports;
    if (!r) return;
    if (r.error) { box.replaceChildren(h('div', { class: 'error-box' }, `Could not load reports: ${r.error}`)); return; }
    if (!r.reports.length) { box.replaceChildren(h('p', { class: 'empty' }, 'No reports yet.')); return; }
    const latest = (key) => {
      const seen = new Map();
      for (const e of r.reports) { const k = key(e); if (k && !seen.has(k)) seen.set(k, e); }
      return [...seen.entries()];
    };
    const table = (title, id, entries) => h('div', { class: 'reports-group' }, h('h3', null, title),
      h('table', { class: 'jobs', id }, h('tbody', null, entries.map(([k, e]) => h('tr', null,
        h('td', null, k),
        h('td', null, e.completedAt ? timeEl(e.completedAt, true) : '—'),
        h('td', null, e.reports.map((a) => h('a', { class: 'report-link', href: artifactUrl(e.jobId, a.path), target: '_blank', rel: 'noopener noreferrer' }, a.path))),
        h('td', null, h('a', { href: `#/job/${encodeURIComponent(e.jobId)}` }, 'Job')))))));
    box.replaceChildren(
      table('Latest per pipeline', 'reports-by-pipeline', latest((e) => e.pipelineId)),
      table('Latest per repository', 'reports-by-repository', latest((e) => e.repository)));
  }

  // ---------------------------------------------------------------- schedules

  async function loadSchedules() {
    try {
      state.schedules = await api('GET', '/api/schedules');
    } catch (e) {
      state.schedules = { error: e.message };
    }
    markDirty('schedules');
  }
  const refreshSchedulesSoon = throttle(loadSchedules, 1000);

  function scheduleJobIds() {
    const list = (state.schedules && state.schedules.schedules) || [];
    return new Set(list.map((s) => s.lastJobId).filter(Boolean));
  }

  function scheduleRunGoing() {
    const list = (state.schedules && state.schedules.schedules) || [];
    return list.some((s) => s.lastOutcome === 'queued' || s.lastOutcome === 'running');
  }

  async function scheduleAction(id, action, done) {
    try {
      const res = await mutate('POST', `/api/schedules/${encodeURIComponent(id)}/${action}`);
      toast(done(res));
    } catch (e) {
      toast(`${action} ${id} failed: ${e.message}`, 'error');
    }
    loadSchedules();
  }

  /** Each schedule: its timing, next fire, last run and outcome, and its actions. */
  function renderSchedules() {
    const box = $('schedules');
    const r = state.schedules;
    if (!r) return;
    if (r.error) { box.replaceChildren(h('div', { class: 'error-box' }, `Could not load schedules: ${r.error}`)); return; }
    $('schedules-count').textContent = r.schedules.length ? `${r.schedules.length} configured` : '';
    if (!r.schedules.length) { box.replaceChildren(h('p', { class: 'empty' }, 'No schedules. Add [[pipelines.ID.schedules]] to the configuration or POST /api/schedules.')); return; }
    const rows = r.schedules.map((s) => h('tr', { dataset: { schedule: s.id } },
      h('td', null, h('b', null, s.id), h('div', { class: 'muted' }, s.pipelineId)),
      h('td', null, h('code', null, s.cron), h('div', { class: 'muted' }, s.timezone)),
      h('td', { class: 'sched-next' }, s.paused ? pill('paused') : (s.nextFire ? timeEl(s.nextFire, false) : '—')),
      h('td', { class: 'sched-last' }, s.lastJobId
        ? h('a', { href: `#/job/${encodeURIComponent(s.lastJobId)}` }, s.lastFire ? timeEl(s.lastFire, true) : s.lastJobId)
        : '—'),
      h('td', { class: 'sched-outcome' }, s.lastOutcome ? pill(s.lastOutcome) : '—'),
      h('td', { class: 'actions' },
        s.paused
          ? h('button', { type: 'button', class: 'btn btn-small', dataset: { resume: s.id },
            onclick: () => scheduleAction(s.id, 'resume', () => `Resumed ${s.id}`) }, 'Resume')
          : h('button', { type: 'button', class: 'btn btn-small', dataset: { pause: s.id },
            onclick: () => scheduleAction(s.id, 'pause', () => `Paused ${s.id}`) }, 'Pause'),
        h('button', { type: 'button', class: 'btn btn-primary btn-small', dataset: { runNow: s.id },
          onclick: () => scheduleAction(s.id, 'run', (res) => `Started ${res.jobId}`) }, 'Run now'))));
    box.replaceChildren(h('table', { class: 'jobs', id: 'schedules-table' },
      h('thead', null, h('tr', null, ['Schedule', 'Cron', 'Next fire', 'Last run', 'Outcome', ''].map((t) => h('th', null, t)))),
      h('tbody', null, rows)));
  }

  async function loadLogs(id) {
    try {
      const logs = await api('GET', `/api/jobs/${encodeURIComponent(id)}/logs`);
      if (state.openJobId !== id) return;
      state.openLogs = logs;
    } catch (e) {
      state.openLogs = { error: e.message };
    }
    markDirty('detail');
  }

  function renderDetail() {
    const id = state.openJobId;
    const job = id && state.jobs.get(id);
    if (!job) return;
    const body = $('drawer-body');
    const scroll = body.scrollTop;
    const logsBox = body.querySelector('.logs-box');
    const logsScroll = logsBox ? logsBox.scrollTop : null;
    const params = job.data && typeof job.data === 'object' ? { ...job.data } : job.data;
    const meta = {};
    if (params && typeof params === 'object') {
      for (const k of ['triggeredBy', 'triggeredAt', 'retriedFrom']) if (k in params) { meta[k] = params[k]; delete params[k]; }
    }
    const fact = (label, value) => [h('dt', null, label), h('dd', null, value == null || value === '' ? '—' : value)];
    const canCancel = !TERMINAL.has(job.status);
    const canRetry = job.status === 'failed' || job.status === 'cancelled';
    const content = [
      h('div', { class: 'detail-top' },
        pill(job.status),
        h('span', { class: 'muted' }, job.pipelineId),
        h('div', { class: 'detail-actions' },
          canCancel ? h('button', { type: 'button', class: 'btn btn-danger', dataset: { cancel: job.id }, onclick: () => cancelJob(job.id) }, 'Cancel job') : null,
          canRetry ? h('button', { type: 'button', class: 'btn btn-primary', dataset: { retry: job.id }, onclick: () => retryJob(job.id) }, 'Retry') : null)),
      h('div', { class: 'detail-progress' }, progressBar(job),
        job.progress && job.progress.message ? h('div', { class: 'progress-msg' }, job.progress.message) : null),
      h('h3', null, 'Details'),
      h('dl', { class: 'facts' },
        fact('Pipeline', job.pipelineId),
        fact('Attempt', String(job.attempt ?? '—')),
        fact('Worker version', job.workerVersion),
        fact('Component', job.componentDigest
          ? h('code', { id: 'job-digest', title: `sha256:${job.componentDigest}` }, `sha256:${String(job.componentDigest).slice(0, 12)}`)
          : null),
        fact('Created', timeEl(job.createdAt, false)),
        fact('Started', job.startedAt ? timeEl(job.startedAt, false) : null),
        fact('Finished', job.completedAt ? timeEl(job.completedAt, false) : null),
        fact('Duration', fmtDuration(job.startedAt, job.completedAt)),
        fact('Triggered by', meta.triggeredBy),
        job.retriedFrom || meta.retriedFrom
          ? fact('Retried from', h('a', { href: `#/job/${encodeURIComponent(job.retriedFrom || meta.retriedFrom)}` }, job.retriedFrom || meta.retriedFrom))
          : null,
        job.retryCount ? fact('Retry count', String(job.retryCount)) : null),
    ];
    if (job.error) {
      content.push(h('h3', null, 'Error'), h('div', { class: 'error-box', id: 'job-error' },
        h('div', { class: 'code' }, job.error.code || 'ERROR', job.error.retryable ? ' · retryable' : ''),
        h('div', null, job.error.message)));
    }
    if (job.result !== undefined && job.result !== null) {
      content.push(h('h3', null, 'Result'), h('pre', { class: 'json', id: 'job-result' }, JSON.stringify(job.result, null, 2)));
    }
    if (job.git && (job.git.branchName || job.git.commitSha || job.git.prUrl || (job.git.changedFiles || []).length)) {
      const g = job.git;
      const pr = g.prUrl && safeUrl(g.prUrl) && /^https?:/i.test(g.prUrl) ? h('a', { href: g.prUrl, target: '_blank', rel: 'noopener noreferrer' }, g.prUrl) : g.prUrl;
      content.push(h('h3', null, 'Git'), h('dl', { class: 'facts', id: 'job-git' },
        fact('Branch', g.branchName ? h('code', null, g.branchName) : null),
        fact('Original branch', g.originalBranch ? h('code', null, g.originalBranch) : null),
        fact('Commit', g.commitSha ? h('code', null, g.commitSha) : null),
        fact('Pull request', pr),
        fact('Changed files', (g.changedFiles || []).length
          ? h('ul', { class: 'files' }, g.changedFiles.map((f) => h('li', null, f))) : 'none')));
    }
    content.push(h('h3', null, 'Parameters'), h('pre', { class: 'json' }, JSON.stringify(params ?? {}, null, 2)));
    content.push(renderArtifacts(job));
    content.push(renderLogs(job));
    body.replaceChildren(...content);
    body.scrollTop = scroll;
    const nb = body.querySelector('.logs-box');
    if (nb && logsScroll != null) nb.scrollTop = logsScroll;
  }

  function renderLogs(job) {
    const logs = state.openLogs;
    const head = h('div', { class: 'section-head' }, h('h3', null, 'Logs'),
      h('button', { type: 'button', class: 'btn btn-small btn-ghost-dark', onclick: () => loadLogs(job.id) }, 'Refresh'));
    if (!logs) return h('div', null, head, h('p', { class: 'empty' }, 'Loading logs…'));
    if (logs.error) return h('div', null, head, h('div', { class: 'error-box' }, `Could not load logs: ${logs.error}`));
    const entries = logs.logs || [];
    if (!entries.length) return h('div', null, head, h('p', { class: 'empty' }, 'Nothing logged.'));
    const lvl = (l) => String(l || '').toLowerCase().replace(/[^a-z]/g, '');
    return h('div', null, head,
      logs.truncated ? h('p', { class: 'muted' }, 'The log was truncated.') : null,
      h('div', { class: 'logs-box' }, h('table', { class: 'logs', id: 'job-logs' }, h('tbody', null, entries.map((e) => h('tr', null,
        h('td', { class: 't', title: e.timestamp }, e.timestamp ? new Date(e.timestamp).toLocaleTimeString() : ''),
        h('td', { class: `lvl lvl-${lvl(e.level)}` }, e.level),
        h('td', { class: 'stream' }, e.stream),
        h('td', { class: 'm' }, e.message,
          e.fields && Object.keys(e.fields).length ? h('span', { class: 'fields' }, ` ${JSON.stringify(e.fields)}`) : null)))))));
  }

  // ---------------------------------------------------------------- trigger form

  function resolveRef(schema, root) {
    let s = schema;
    for (let i = 0; i < 8 && s && typeof s.$ref === 'string' && s.$ref.startsWith('#/'); i++) {
      const target = s.$ref.slice(2).split('/').reduce((o, k) => (o ? o[k.replace(/~1/g, '/').replace(/~0/g, '~')] : undefined), root);
      if (!target) break;
      const rest = { ...s };
      delete rest.$ref;
      s = { ...target, ...rest };
    }
    return s || {};
  }

  function mainType(s) {
    const t = s.type;
    if (Array.isArray(t)) {
      const nn = t.filter((x) => x !== 'null');
      return nn.length === 1 ? nn[0] : null;
    }
    return t || null;
  }

  /** Decides which control a property gets. */
  function fieldKind(s, root) {
    if (Array.isArray(s.enum) && s.enum.length) return 'enum';
    if ('const' in s) return 'enum';
    if (s.anyOf || s.oneOf || s.allOf) return 'json';
    const t = mainType(s);
    if (t === 'string') return 'string';
    if (t === 'integer') return 'integer';
    if (t === 'number') return 'number';
    if (t === 'boolean') return 'boolean';
    if (t === 'array') {
      const items = resolveRef(s.items || {}, root);
      if (mainType(items) === 'string' && !items.enum) return 'strings';
      if (Array.isArray(items.enum) && items.enum.every((v) => typeof v === 'string')) return 'strings';
    }
    return 'json';
  }

  function buildFields(schema) {
    const root = schema || {};
    const props = (root.properties && typeof root.properties === 'object') ? root.properties : {};
    const required = new Set(Array.isArray(root.required) ? root.required : []);
    return Object.entries(props).map(([name, raw]) => {
      const s = resolveRef(raw || {}, root);
      const kind = fieldKind(s, root);
      return { name, schema: s, kind, required: required.has(name), path: s['x-alephauto-path'] };
    }).sort((a, b) => Number(b.required) - Number(a.required)); // required first, else schema order
  }

  function fieldControl(f, pid) {
    const s = f.schema;
    const id = `param-${pid}-${f.name}`;
    const has = 'default' in s;
    const common = { id, name: f.name, dataset: { param: f.name } };
    switch (f.kind) {
      case 'enum': {
        const values = Array.isArray(s.enum) ? s.enum : [s.const];
        const sel = h('select', common,
          f.required && has ? null : h('option', { value: '' }, '— not set —'),
          values.map((v, i) => h('option', { value: String(i) }, typeof v === 'string' ? v : JSON.stringify(v))));
        if (has) {
          const i = values.findIndex((v) => JSON.stringify(v) === JSON.stringify(s.default));
          if (i >= 0) sel.value = String(i);
        }
        f.read = () => (sel.value === '' ? undefined : values[Number(sel.value)]);
        return sel;
      }
      case 'boolean': {
        if (has || f.required) {
          const cb = h('input', { ...common, type: 'checkbox', checked: has ? !!s.default : false });
          f.read = () => cb.checked;
          return cb;
        }
        const sel = h('select', common, h('option', { value: '' }, '— not set —'), h('option', { value: 'true' }, 'true'), h('option', { value: 'false' }, 'false'));
        f.read = () => (sel.value === '' ? undefined : sel.value === 'true');
        return sel;
      }
      case 'integer':
      case 'number': {
        const input = h('input', {
          ...common, type: 'number', step: f.kind === 'integer' ? (s.multipleOf || 1) : (s.multipleOf || 'any'),
          min: s.minimum ?? (s.exclusiveMinimum != null ? s.exclusiveMinimum : null),
          max: s.maximum ?? (s.exclusiveMaximum != null ? s.exclusiveMaximum : null),
          value: has ? String(s.default) : '', placeholder: f.required ? 'required' : 'optional',
        });
        f.read = () => {
          const v = input.value.trim();
          if (v === '') return undefined;
          const n = Number(v);
          if (!Number.isFinite(n)) throw new Error('must be a number');
          if (f.kind === 'integer' && !Number.isInteger(n)) throw new Error('must be a whole number');
          if (s.minimum != null && n < s.minimum) throw new Error(`must be at least ${s.minimum}`);
          if (s.maximum != null && n > s.maximum) throw new Error(`must be at most ${s.maximum}`);
          return n;
        };
        return input;
      }
      case 'string': {
        const long = (s.maxLength || 0) > 200 || s.format === 'textarea';
        const input = h(long ? 'textarea' : 'input', {
          ...common, type: long ? null : 'text', rows: long ? 4 : null, value: has ? String(s.default) : '',
          placeholder: f.path ? 'Absolute path inside the pipeline\'s granted roots' : (s.format ? s.format : (f.required ? 'required' : 'optional')),
          spellcheck: f.path ? 'false' : null, autocomplete: 'off',
        });
        f.read = () => (input.value === '' ? undefined : input.value);
        return input;
      }
      case 'strings': {
        const ta = h('textarea', { ...common, rows: 3, placeholder: 'One value per line', value: has && Array.isArray(s.default) ? s.default.join('\n') : '' });
        f.read = () => {
          const lines = ta.value.split('\n').map((l) => l.trim()).filter(Boolean);
          return lines.length || f.required ? lines : undefined;
        };
        return ta;
      }
      default: {
        const ta = h('textarea', { ...common, rows: 4, placeholder: 'JSON value', value: has ? JSON.stringify(s.default, null, 2) : '' });
        f.read = () => {
          const v = ta.value.trim();
          if (v === '') return undefined;
          try { return JSON.parse(v); } catch (e) { throw new Error(`is not valid JSON (${e.message})`); }
        };
        return ta;
      }
    }
  }

  function typeHint(f) {
    const s = f.schema;
    switch (f.kind) {
      case 'strings': return 'list of strings';
      case 'json': return mainType(s) || 'JSON';
      case 'enum': return 'choice';
      default: {
        const range = [s.minimum != null ? `≥ ${s.minimum}` : null, s.maximum != null ? `≤ ${s.maximum}` : null].filter(Boolean).join(', ');
        return range ? `${f.kind}, ${range}` : f.kind;
      }
    }
  }

  function openTrigger(pid) {
    const p = state.pipelines.find((x) => x.id === pid);
    if (!p) return;
    const schema = p.paramsSchema;
    const fields = schema && typeof schema === 'object' ? buildFields(schema) : [];
    const noProps = !schema || typeof schema !== 'object' || !schema.properties || !Object.keys(schema.properties).length;
    const closedEmpty = noProps && schema && schema.additionalProperties === false;
    const formError = h('div', { class: 'error-box form-error', id: 'trigger-error', hidden: true });
    const fieldEls = new Map();
    const rawTa = h('textarea', { rows: 5, id: `raw-${pid}`, placeholder: '{"key": "value"}', dataset: { param: '__raw' } });
    if (noProps && !closedEmpty) rawTa.rows = 6;

    const controls = fields.map((f) => {
      const control = fieldControl(f, pid);
      const err = h('span', { class: 'field-error', hidden: true });
      const label = h('label', { for: control.id },
        f.schema.title || f.name,
        f.required ? h('span', { class: 'req', title: 'required' }, '*') : null,
        f.path ? h('span', { class: 'path-badge', title: 'A filesystem path; it must be inside the pipeline\'s granted roots' },
          `path${typeof f.path === 'string' ? ` · ${f.path}` : ''}`) : null,
        h('span', { class: 'type-hint' }, typeHint(f)));
      const wrap = f.kind === 'boolean' && control.type === 'checkbox'
        ? h('div', { class: 'field', dataset: { field: f.name } }, h('div', { class: 'field-check' }, control, label), f.schema.description ? h('span', { class: 'help' }, f.schema.description) : null, err)
        : h('div', { class: 'field', dataset: { field: f.name } }, label, control, f.schema.description ? h('span', { class: 'help' }, f.schema.description) : null, err);
      fieldEls.set(f.name, { wrap, err });
      return wrap;
    });

    const submit = h('button', { type: 'submit', class: 'btn btn-primary', id: 'trigger-submit', dataset: { action: 'submit-trigger' } }, 'Trigger job');
    const showFieldError = (name, message) => {
      const el = fieldEls.get(name);
      if (!el) return false;
      el.wrap.classList.add('invalid');
      el.err.textContent = message;
      el.err.hidden = false;
      return true;
    };
    const resetErrors = () => {
      formError.hidden = true;
      for (const { wrap, err } of fieldEls.values()) { wrap.classList.remove('invalid'); err.hidden = true; }
    };

    const form = h('form', {
      novalidate: true,
      dataset: { pipeline: pid },
      onsubmit: async (ev) => {
        ev.preventDefault();
        resetErrors();
        let params = {};
        let bad = false;
        const raw = rawTa.value.trim();
        if (raw) {
          try {
            params = JSON.parse(raw);
            if (!params || typeof params !== 'object' || Array.isArray(params)) throw new Error('must be a JSON object');
          } catch (e) {
            formError.textContent = `Raw parameters ${e.message}`;
            formError.hidden = false;
            return;
          }
        } else {
          for (const f of fields) {
            try {
              const v = f.read();
              if (v === undefined) {
                if (f.required) throw new Error('is required');
              } else {
                params[f.name] = v;
              }
            } catch (e) {
              bad = true;
              showFieldError(f.name, `${f.schema.title || f.name} ${e.message}`);
            }
          }
        }
        if (bad) return;
        submit.disabled = true;
        submit.textContent = 'Triggering…';
        try {
          const res = await mutate('POST', `/api/pipelines/${encodeURIComponent(pid)}/trigger`, { parameters: params });
          closeModal();
          toast(`Queued ${res.jobId}`, '', res.jobId);
          if (!state.jobs.has(res.jobId)) {
            state.jobs.set(res.jobId, { id: res.jobId, pipelineId: pid, status: res.status || 'queued', createdAt: res.timestamp, progress: { percent: 0, message: '' }, data: params, attempt: 1, _flash: true });
            markDirty('jobs');
          }
        } catch (e) {
          const named = fields.find((f) => new RegExp(`(^|[^A-Za-z0-9_])${f.name.replace(/[^A-Za-z0-9_]/g, '\\$&')}([^A-Za-z0-9_]|$)`).test(e.message));
          if (named) showFieldError(named.name, e.message);
          formError.textContent = e.status ? `${e.message} (${e.status} ${e.code})` : e.message;
          formError.hidden = false;
          submit.disabled = false;
          submit.textContent = 'Trigger job';
        }
      },
    },
    h('div', { class: 'modal-head' },
      h('h2', { id: 'modal-title' }, `Trigger ${p.name || p.id}`),
      h('p', null, p.description || `Pipeline ${p.id}`)),
    h('div', { class: 'modal-body' },
      formError,
      controls,
      noProps
        ? (closedEmpty
          ? h('p', { class: 'muted' }, 'This pipeline takes no parameters.')
          : h('div', { class: 'field' }, h('label', { for: rawTa.id }, 'Parameters (JSON object)'), rawTa,
            h('span', { class: 'help' }, schema ? 'The worker declares no individual fields.' : 'The worker has not described its parameters yet.')))
        : h('details', { class: 'raw' }, h('summary', null, 'Advanced: send raw JSON instead'), rawTa,
          h('span', { class: 'help muted' }, 'When filled, this object is sent as-is and the fields above are ignored.'))),
    h('div', { class: 'modal-foot' },
      h('button', { type: 'button', class: 'btn', onclick: closeModal }, 'Cancel'),
      submit));
    openModal(form);
    const first = form.querySelector('input, select, textarea');
    if (first) first.focus();
  }

  // ---------------------------------------------------------------- runs

  // Fan-out runs: the newest runs with their aggregate progress; a row opens the run's
  // targets with each job's status. Polled while runs are active, reloaded on job events.
  const runsView = { open: new Set(), details: new Map(), timer: null, loading: false };

  function runProgress(run) {
    const pct = clampPct(run.percent);
    const fill = h('div', { class: `bar-fill ${run.status}` });
    fill.style.width = `${pct}%`;
    const c = run.counts || {};
    return h('div', { class: 'progress' },
      h('div', { class: 'bar', role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': pct }, fill),
      h('span', { class: 'progress-text', dataset: { runProgress: run.id } },
        `${pct}% · ${c.completed || 0} ok, ${c.failed || 0} failed, ${c.refused || 0} refused, ${c.cancelled || 0} cancelled of ${run.total}`));
  }

  function runTargets(detail) {
    const rows = (detail.targets || []).map((t) => h('tr', { dataset: { runTarget: t.path } },
      h('td', { class: 'mono' }, t.path),
      h('td', null, t.jobId ? h('a', { href: `#/job/${encodeURIComponent(t.jobId)}`, class: 'mono' }, t.jobId) : '—'),
      h('td', null, t.status ? pill(t.status) : pill('refused')),
      h('td', { class: 'muted' }, t.refused || (t.completedAt ? fmtTime(t.completedAt) : ''))));
    return h('table', { class: 'jobs run-targets' },
      h('thead', null, h('tr', null, h('th', null, 'Target'), h('th', null, 'Job'), h('th', null, 'Status'), h('th', null, ''))),
      h('tbody', null, rows));
  }

  async function cancelRun(id) {
    if (!window.confirm(`Cancel run ${id} and its queued and running jobs?`)) return;
    try {
      await mutate('POST', `/api/runs/${encodeURIComponent(id)}/cancel`);
      toast(`Cancelled run ${id}`);
    } catch (e) {
      toast(`Cancel failed: ${e.message}`, 'error');
    }
    loadRuns();
  }

  function renderRuns(page) {
    const body = $('runs').querySelector('tbody');
    const runs = page.runs || [];
    $('runs-empty').hidden = runs.length > 0;
    $('runs-count').textContent = page.total ? `${runs.length} of ${page.total}` : '';
    const rows = [];
    for (const run of runs) {
      const active = !['completed', 'partial', 'failed', 'cancelled'].includes(run.status);
      const toggle = () => {
        if (runsView.open.has(run.id)) runsView.open.delete(run.id); else runsView.open.add(run.id);
        loadRuns();
      };
      rows.push(h('tr', { class: 'run-row', dataset: { runId: run.id, runStatus: run.status } },
        h('td', null, h('button', { type: 'button', class: 'btn btn-small btn-ghost-dark mono', onclick: toggle, 'aria-expanded': runsView.open.has(run.id) ? 'true' : 'false' }, run.id)),
        h('td', null, run.pipelineId),
        h('td', null, run.inventory),
        h('td', null, pill(run.status)),
        h('td', { class: 'col-progress' }, runProgress(run)),
        h('td', null, timeEl(run.createdAt, true)),
        h('td', null, active && run.status !== 'cancelled'
          ? h('button', { type: 'button', class: 'btn btn-small btn-danger', dataset: { cancelRun: run.id }, onclick: () => cancelRun(run.id) }, 'Cancel')
          : null)));
      const detail = runsView.details.get(run.id);
      if (runsView.open.has(run.id) && detail) {
        rows.push(h('tr', { class: 'run-detail', dataset: { runDetail: run.id } }, h('td', { colspan: 7 }, runTargets(detail))));
      }
    }
    body.replaceChildren(...rows);
  }

  async function loadRuns() {
    if (runsView.loading) return;
    runsView.loading = true;
    try {
      const page = await api('GET', '/api/runs?limit=10');
      for (const id of runsView.open) {
        try {
          runsView.details.set(id, await api('GET', `/api/runs/${encodeURIComponent(id)}`));
        } catch (_) {
          runsView.open.delete(id);
        }
      }
      renderRuns(page);
      const busy = (page.runs || []).some((r) => ['starting', 'queued', 'running'].includes(r.status));
      clearTimeout(runsView.timer);
      runsView.timer = setTimeout(loadRuns, busy ? 1000 : 5000);
    } catch (e) {
      clearTimeout(runsView.timer);
      runsView.timer = setTimeout(loadRuns, 5000);
    } finally {
      runsView.loading = false;
    }
  }

  // ---------------------------------------------------------------- wiring

  function route() {
    const m = location.hash.match(/^#\/job\/(.+)$/);
    if (m) {
      let id;
      try { id = decodeURIComponent(m[1]); } catch (_) { return; }
      showJob(id);
    } else if (state.openJobId) {
      closeJob();
    }
  }

  function init() {
    takeKeyFromFragment();
    $('drawer-close').addEventListener('click', closeJob);
    $('drawer-overlay').addEventListener('click', (ev) => { if (ev.target === ev.currentTarget) closeJob(); });
    $('modal-overlay').addEventListener('click', (ev) => {
      if (ev.target === ev.currentTarget) { const f = modalOnClose; closeModal(); if (f) f(); }
    });
    document.addEventListener('keydown', (ev) => {
      if (ev.key !== 'Escape') return;
      if (!$('key-overlay').hidden) state.keyCancel();
      else if (!$('modal-overlay').hidden) { const f = modalOnClose; closeModal(); if (f) f(); } else if (state.openJobId) closeJob();
    });
    $('key-button').addEventListener('click', () => askForKey('Set the API key this dashboard sends with actions.').then(() => connectWs()));
    $('conn').addEventListener('click', () => {
      if (state.conn === 'reconnecting') { state.retryDelay = 1000; connectWs(); }
      if (state.conn === 'auth') askForKey('This server needs an API key.').then((ok) => ok && connectWs());
    });
    $('activity-clear').addEventListener('click', () => {
      state.activity = [];
      $('activity').replaceChildren();
      $('activity-empty').hidden = false;
    });
    $('filter-pipeline').addEventListener('change', (ev) => { state.filterPipeline = ev.target.value; renderJobs(); });
    $('filter-status').addEventListener('change', (ev) => { state.filterStatus = ev.target.value; renderJobs(); });
    window.addEventListener('hashchange', route);
    window.addEventListener('online', () => { if (state.conn !== 'live') { state.retryDelay = 1000; connectWs(); } });
    setInterval(() => { markDirty('jobs'); if (state.health) state.health.uptimeSeconds += 10; markDirty('header'); }, 10000);

    resync();
    connectWs();
    route();
    loadRuns();
  }

  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
})();
