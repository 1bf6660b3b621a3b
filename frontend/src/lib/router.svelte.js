// Hash-based client routing: #/, #/o/<org>, #/o/<org>/c/<slug>, #/o/<org>/t/<id>, #/o/<org>/mod,
// #/o/<org>/agents, #/o/<org>/admin/<tab>, #/o/<org>/x/<execution id>, #/o/<org>/search?q=…,
// #/o/<org>/notifications, #/o/<org>/u/<username>. Query parameters follow a `?` inside the hash.
// Without a `#/` hash, the canonical server-rendered URL /o/<org>/t/<id>[/<slug>] maps to the thread route
// (the app takes over the page the server rendered).

function parseQuery(text) {
  const query = {};
  for (const [k, v] of new URLSearchParams(text || '')) query[k] = v;
  return query;
}

function parse(hash, pathname = '') {
  let raw = (hash || '').replace(/^#\/?/, '');
  if (!hash && /^\/o\/[^/]+\/t\/[^/]+/.test(pathname)) raw = pathname.slice(1);
  const [path, qs] = raw.split('?');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const query = parseQuery(qs);
  if (parts[0] !== 'o' || !parts[1]) return { name: 'home', params: {}, query };
  const org = parts[1];
  const [kind, arg] = [parts[2], parts[3]];
  const r = (name, params = {}) => ({ name, params: { org, ...params }, query });
  if (!kind) return r('org');
  if (kind === 'c' && arg) return r('category', { slug: arg });
  if (kind === 't' && arg) return r('thread', { id: arg });
  if (kind === 'mod') return r('moderation');
  if (kind === 'agents') return r('admin', { tab: 'agents' });
  if (kind === 'admin') return r('admin', { tab: arg || 'agents' });
  if (kind === 'x' && arg) return r('execution', { id: arg });
  if (kind === 'search') return r('search');
  if (kind === 'notifications') return r('notifications');
  if (kind === 'u' && arg) return r('user', { username: arg });
  return r('notfound');
}

const here = typeof location === 'undefined' ? { hash: '', pathname: '' } : location;
export const route = $state(parse(here.hash, here.pathname));

if (typeof window !== 'undefined') {
  window.addEventListener('hashchange', () => {
    // In-page anchors inside post content (e.g. "#fn1", "#harmful-link") are not routes.
    if (location.hash && !location.hash.startsWith('#/')) return;
    const next = parse(location.hash, location.pathname);
    const samePage = next.name === route.name && JSON.stringify(next.params) === JSON.stringify(route.params);
    route.name = next.name;
    route.params = next.params;
    route.query = next.query;
    if (!samePage) window.scrollTo(0, 0);
  });
}

const enc = encodeURIComponent;
const qs = (query) => {
  const s = new URLSearchParams(Object.entries(query || {}).filter(([, v]) => v != null && v !== '')).toString();
  return s ? `?${s}` : '';
};
export const href = {
  home: () => '#/',
  org: (org) => `#/o/${enc(org)}`,
  category: (org, slug) => `#/o/${enc(org)}/c/${enc(slug)}`,
  thread: (org, id, post) => `#/o/${enc(org)}/t/${enc(id)}${post ? qs({ post }) : ''}`,
  moderation: (org) => `#/o/${enc(org)}/mod`,
  agents: (org) => `#/o/${enc(org)}/admin/agents`,
  admin: (org, tab = 'agents', query) => `#/o/${enc(org)}/admin/${enc(tab)}${qs(query)}`,
  execution: (org, id) => `#/o/${enc(org)}/x/${enc(id)}`,
  search: (org, query) => `#/o/${enc(org)}/search${qs(query)}`,
  notifications: (org) => `#/o/${enc(org)}/notifications`,
  user: (org, username) => `#/o/${enc(org)}/u/${enc(username)}`,
};

/** The canonical, shareable (server-rendered) URL of a thread. */
export function canonicalThreadUrl(org, id, slug) {
  return `${location.origin}/o/${enc(org)}/t/${enc(id)}${slug ? `/${enc(slug)}` : ''}`;
}

export function go(url) {
  location.hash = url.replace(/^#/, '');
}
