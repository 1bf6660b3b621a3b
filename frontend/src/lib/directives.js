// What a directive will do, in words (approvals show this before a human decides).
const VERBS = {
  'forum.post.create': (p) => `Post a reply${p.thread_id ? ' in the thread' : ''}${p.body ? `: “${String(p.body).slice(0, 140)}${String(p.body).length > 140 ? '…' : ''}”` : ''}`,
  'forum.post.hide': () => 'Hide the post from members (moderators still see it)',
  'forum.post.restore': () => 'Restore the hidden post',
  'forum.post.flag': (p) => `Flag the post for moderators${p.reason ? ` as ${p.reason}` : ''}`,
  'forum.thread.close': () => 'Close the thread to new replies',
  'forum.thread.move': (p) => `Move the thread${p.category ? ` to “${p.category}”` : ''}`,
  'forum.thread.summarize': () => 'Write a summary post of the thread',
  'forum.thread.tag': (p) => `Tag the thread${p.tags ? ` with ${[].concat(p.tags).join(', ')}` : ''}`,
  'forum.notification.send': () => 'Notify someone',
};

export function describeDirective(d) {
  const p = d.payload ?? {};
  const f = VERBS[d.type];
  const base = f ? f(p) : d.type;
  const reason = p.reason && d.type !== 'forum.post.flag' ? ` — reason: ${p.reason}` : '';
  return base + reason;
}

export function directiveTarget(d) {
  const p = d.payload ?? {};
  return { thread: p.thread_id ?? null, post: p.post_id ?? null };
}
