// Links to one post (`#/o/<org>/t/<id>?post=<post id>`, from search, notifications, the queue, profiles) scroll to
// it and highlight it once the thread page has rendered it (waits up to a few seconds for the page to load).
export function focusPost(postId) {
  if (!postId || typeof document === 'undefined') return () => {};
  let tries = 0;
  const timer = setInterval(() => {
    const el = document.querySelector(`[data-testid="post"][data-post-id="${CSS.escape(postId)}"]`);
    if (el) {
      clearInterval(timer);
      el.scrollIntoView({ block: 'center' });
      el.classList.add('focused-post');
      setTimeout(() => el.classList.remove('focused-post'), 2500);
    } else if (++tries > 40) clearInterval(timer);
  }, 150);
  return () => clearInterval(timer);
}
