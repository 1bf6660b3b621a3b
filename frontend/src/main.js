import { mount } from 'svelte';
import './app.css';
import App from './App.svelte';

// On a server-rendered thread page (/o/<org>/t/<id>), the server's HTML (#ssr) stays readable until the
// app has rendered the same thread (or an error), then the app takes over.
const ssr = document.getElementById('ssr');
const target = document.getElementById('app');
if (ssr) {
  document.body.classList.add('ssr');
  const done = () => {
    if (!target.querySelector('[data-testid="thread-title"], [role="alert"]')) return;
    ssr.remove();
    document.body.classList.remove('ssr');
    observer.disconnect();
  };
  const observer = new MutationObserver(done);
  observer.observe(target, { childList: true, subtree: true });
}

const app = mount(App, { target });

export default app;
