// The signed-in user and their orgs, shared by every page.
export const session = $state({ phase: 'loading', user: null, orgs: [] });

export function roleIn(org) {
  return session.orgs.find((o) => o.slug === org)?.role ?? null;
}

const RANK = { member: 1, moderator: 2, admin: 3 };
export function atLeast(org, role) {
  return (RANK[roleIn(org)] ?? 0) >= RANK[role];
}
