// Hash-based client routing: #/, #/o/<org>, #/o/<org>/c/<slug>, #/o/<org>/t/<id>,
// #/o/<org>/mod, #/o/<org>/agents, #/o/<org>/x/<execution id>.

function parse(hash) {
  const parts = (hash || '').replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== 'o' || !parts[1]) return { name: 'home', params: {} };
  const org = parts[1];
  const [kind, arg] = [parts[2], parts[3]];
  if (!kind) return { name: 'org', params: { org } };
  if (kind === 'c' && arg) return { name: 'category', params: { org, slug: arg } };
  if (kind === 't' && arg) return { name: 'thread', params: { org, id: arg } };
  if (kind === 'mod') return { name: 'moderation', params: { org } };
  if (kind === 'agents') return { name: 'agents', params: { org } };
  if (kind === 'x' && arg) return { name: 'execution', params: { org, id: arg } };
  return { name: 'notfound', params: { org } };
}

export const route = $state(parse(typeof location === 'undefined' ? '' : location.hash));

if (typeof window !== 'undefined') {
  window.addEventListener('hashchange', () => {
    // In-page anchors inside post content (e.g. "#fn1", "#harmful-link") are not routes.
    if (location.hash && !location.hash.startsWith('#/')) return;
    const next = parse(location.hash);
    route.name = next.name;
    route.params = next.params;
    window.scrollTo(0, 0);
  });
}

const enc = encodeURIComponent;
export const href = {
  home: () => '#/',
  org: (org) => `#/o/${enc(org)}`,
  category: (org, slug) => `#/o/${enc(org)}/c/${enc(slug)}`,
  thread: (org, id) => `#/o/${enc(org)}/t/${enc(id)}`,
  moderation: (org) => `#/o/${enc(org)}/mod`,
  agents: (org) => `#/o/${enc(org)}/agents`,
  execution: (org, id) => `#/o/${enc(org)}/x/${enc(id)}`,
};

export function go(url) {
  location.hash = url.replace(/^#/, '');
}
