// Small fetch wrapper for the same-origin JSON API.
// - sends cookies (session) with every request
// - adds the `x-csrftoken` header (value of the `csrftoken` cookie) on unsafe methods
// - parses JSON responses; 204 / empty bodies resolve to null
// - throws ApiError (an Error with `status` and `detail`) on non-2xx responses

const UNSAFE = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

export class ApiError extends Error {
  constructor(status, detail, body = null, retryAfter = null) {
    super(typeof detail === 'string' && detail ? detail : `Request failed (${status})`);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
    this.body = body;
    /** seconds until a rate-limited request may be retried (429 Retry-After), else null */
    this.retryAfter = retryAfter;
  }
}

export function getCookie(name) {
  const prefix = name + '=';
  for (const part of document.cookie ? document.cookie.split(';') : []) {
    const c = part.trim();
    if (c.startsWith(prefix)) return decodeURIComponent(c.slice(prefix.length));
  }
  return null;
}

async function parseBody(res) {
  if (res.status === 204 || res.status === 205) return null;
  const text = await res.text();
  if (!text) return null;
  const type = res.headers.get('content-type') || '';
  if (type.includes('json')) {
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }
  return text;
}

function detailFrom(body, res) {
  if (body && typeof body === 'object') {
    if (typeof body.detail === 'string' && body.detail) return body.detail;
    if (body.detail != null) return JSON.stringify(body.detail);
    if (typeof body.message === 'string') return body.message;
  }
  if (typeof body === 'string' && body.trim() && body.length < 300) return body.trim();
  return res.statusText || `HTTP ${res.status}`;
}

/**
 * @param {string} path  e.g. "/api/v1/me"
 * @param {{method?: string, body?: any, headers?: Record<string,string>, signal?: AbortSignal}} [opts]
 */
export async function api(path, { method = 'GET', body, headers = {}, signal } = {}) {
  method = method.toUpperCase();
  const h = { Accept: 'application/json', ...headers };
  const init = { method, headers: h, credentials: 'same-origin', signal };
  if (body !== undefined) {
    h['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (UNSAFE.has(method)) {
    const token = getCookie('csrftoken');
    if (token) h['x-csrftoken'] = token;
  }

  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    if (e?.name === 'AbortError') throw e;
    throw new ApiError(0, 'Network error: could not reach the server.');
  }
  const data = await parseBody(res);
  if (!res.ok) {
    const retry = Number.parseInt(res.headers.get('retry-after') || '', 10);
    throw new ApiError(res.status, detailFrom(data, res), data, Number.isFinite(retry) ? retry : null);
  }
  return data;
}

export const get = (path, opts) => api(path, { ...opts, method: 'GET' });
export const post = (path, body, opts) => api(path, { ...opts, method: 'POST', body });
export const put = (path, body, opts) => api(path, { ...opts, method: 'PUT', body });
export const patch = (path, body, opts) => api(path, { ...opts, method: 'PATCH', body });
export const del = (path, opts) => api(path, { ...opts, method: 'DELETE' });

/** Path under the tenant API of `org`. */
export const orgPath = (org, path) => `/api/v1/o/${encodeURIComponent(org)}${path}`;
