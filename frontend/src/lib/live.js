// One websocket per org (/api/v1/o/{org}/ws, cookies authenticate). Pages subscribe to channels with a
// handler; the connection resubscribes after a reconnect with `since` = the last event id seen on each
// channel, dedupes events by id and reconnects with exponential backoff.

const FATAL = new Set([4401, 4403, 4404]);
const MAX_SEEN = 2000;

class Live {
  constructor(org) {
    this.org = org;
    this.channels = new Map(); // channel -> { handlers: Set, since: string|null }
    this.seen = new Set();
    this.statusHandlers = new Set();
    this.status = 'connecting';
    this.attempt = 0;
    this.closed = false;
    this.ws = null;
    this.timer = null;
    this.pinger = null;
    this.connect();
  }

  setStatus(status, detail = '') {
    this.status = status;
    for (const h of this.statusHandlers) h(status, detail);
  }

  onStatus(handler) {
    this.statusHandlers.add(handler);
    handler(this.status);
    return () => this.statusHandlers.delete(handler);
  }

  connect() {
    if (this.closed) return;
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const ws = new WebSocket(`${proto}//${location.host}/api/v1/o/${encodeURIComponent(this.org)}/ws`);
    this.ws = ws;
    this.setStatus(this.attempt ? 'reconnecting' : 'connecting');
    ws.onopen = () => {
      this.attempt = 0;
      this.setStatus('live');
      for (const [channel, sub] of this.channels) this.sendSubscribe(channel, sub.since);
      clearInterval(this.pinger);
      this.pinger = setInterval(() => this.send({ op: 'ping' }), 25000);
    };
    ws.onmessage = (e) => {
      let msg;
      try {
        msg = JSON.parse(e.data);
      } catch {
        return;
      }
      this.dispatch(msg);
    };
    ws.onclose = (e) => {
      clearInterval(this.pinger);
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) return;
      if (FATAL.has(e.code)) {
        this.setStatus('closed', e.reason || 'Live updates are not available.');
        return;
      }
      const delay = Math.min(30000, 500 * 2 ** this.attempt) * (0.75 + Math.random() * 0.5);
      this.attempt += 1;
      this.setStatus('reconnecting');
      this.timer = setTimeout(() => this.connect(), delay);
    };
  }

  send(msg) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  sendSubscribe(channel, since) {
    const msg = { op: 'subscribe', channel };
    if (since) msg.since = since;
    this.send(msg);
  }

  dispatch(msg) {
    if (msg.op === 'event') {
      if (msg.id) {
        if (this.seen.has(msg.id)) return;
        this.seen.add(msg.id);
        if (this.seen.size > MAX_SEEN) this.seen.delete(this.seen.values().next().value);
      }
      const sub = this.channels.get(msg.channel);
      if (sub && msg.id) sub.since = msg.id;
    }
    if (msg.op === 'error' && !msg.channel) {
      this.setStatus(this.status, msg.detail || msg.code);
      return;
    }
    const targets = msg.channel ? [this.channels.get(msg.channel)] : [...this.channels.values()];
    for (const sub of targets) if (sub) for (const h of sub.handlers) h(msg);
  }

  /** Subscribe `handler` to `channel`; returns the unsubscribe function. */
  subscribe(channel, handler) {
    let sub = this.channels.get(channel);
    if (!sub) {
      sub = { handlers: new Set(), since: null };
      this.channels.set(channel, sub);
      this.sendSubscribe(channel, null);
    }
    sub.handlers.add(handler);
    return () => {
      sub.handlers.delete(handler);
      if (sub.handlers.size === 0 && this.channels.get(channel) === sub) {
        this.channels.delete(channel);
        this.send({ op: 'unsubscribe', channel });
      }
    };
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }
}

let current = null;

/** The live connection of `org` (one at a time: switching org closes the previous one). */
export function live(org) {
  if (current && current.org === org && !current.closed) return current;
  if (current) current.close();
  current = new Live(org);
  return current;
}

/** Orders an agent's draft deltas by seq; a `snapshot` message carries the whole text so far. */
export class DraftText {
  constructor() {
    this.text = '';
    this.seq = 0;
    this.pending = new Map();
  }

  /** Apply one `draft` message; returns the current text. */
  apply(msg) {
    if (msg.snapshot) {
      if (msg.seq >= this.seq) {
        this.text = msg.delta;
        this.seq = msg.seq;
      }
    } else if (msg.seq > this.seq) {
      this.pending.set(msg.seq, msg.delta);
    }
    this.drain();
    // A gap that never fills (a lost message): skip it rather than stall the preview.
    if (this.pending.size > 8) {
      this.seq = Math.min(...this.pending.keys()) - 1;
      this.drain();
    }
    return this.text;
  }

  drain() {
    for (const s of [...this.pending.keys()]) if (s <= this.seq) this.pending.delete(s);
    while (this.pending.has(this.seq + 1)) {
      this.seq += 1;
      this.text += this.pending.get(this.seq);
      this.pending.delete(this.seq);
    }
  }
}

/**
 * `fn` at most once per `intervalMs` however often the returned trigger is called, each run delayed by
 * a random jitter (so N pages that saw the same event do not fetch in the same millisecond). Events
 * carry what pages draw; this is for the few fetches an event can still cause. `trigger.cancel()`
 * drops a pending run (call it when the page goes away).
 */
export function coalesced(fn, { intervalMs = 1000, jitterMs = 400 } = {}) {
  let timer = null;
  let last = -Infinity;
  const trigger = () => {
    if (timer) return;
    const wait = Math.max(0, last + intervalMs - Date.now()) + Math.random() * jitterMs;
    timer = setTimeout(async () => {
      last = Date.now();
      try {
        await fn();
      } finally {
        timer = null;
      }
    }, wait);
  };
  trigger.cancel = () => {
    clearTimeout(timer);
    timer = null;
  };
  return trigger;
}

/** A post from an event merged over what the page has: the event's view is viewer-neutral, so the
 * viewer's own reactions and markdown (author or moderator) are kept from the page's copy. */
export function mergePost(mine, fromEvent) {
  if (!mine) return fromEvent;
  const concealed = fromEvent.is_hidden || fromEvent.is_deleted;
  return {
    ...fromEvent,
    my_reactions: mine.my_reactions ?? [],
    body: fromEvent.is_deleted ? null : mine.body,
    // a moderator's copy of a hidden post keeps its content (moderators may read it)
    html: concealed && mine.is_hidden && mine.html && !fromEvent.is_deleted ? mine.html : fromEvent.html,
  };
}

/** A thread list (newest activity first) after an `org`/`category:` event that carries `data.thread`;
 * null when the event carries none (the caller may then refresh, coalesced). */
export function threadListAfter(threads, msg, { insertNew = true } = {}) {
  const next = msg.data?.thread;
  if (!next) return null;
  const rest = threads.filter((t) => t.id !== next.id);
  if (!insertNew && rest.length === threads.length) return threads;
  const merged = { ...(threads.find((t) => t.id === next.id) ?? {}), ...next };
  return [merged, ...rest].sort((a, b) => (a.is_pinned === b.is_pinned ? 0 : a.is_pinned ? -1 : 1) || (b.last_activity_at > a.last_activity_at ? 1 : b.last_activity_at < a.last_activity_at ? -1 : 0));
}

/** Categories after an event that carries `data.category` (counters) and `data.thread` (latest). */
export function categoriesAfter(categories, msg) {
  const counters = msg.data?.category;
  if (!counters) return null;
  const thread = msg.data?.thread;
  return categories.map((c) => {
    if (c.id !== counters.id) return c;
    const latest =
      thread && !thread.is_deleted
        ? { id: thread.id, title: thread.title, slug: thread.slug, last_activity_at: thread.last_activity_at }
        : c.latest_thread;
    return { ...c, ...counters, latest_thread: latest };
  });
}
