// JSON requests to the backend, with the headers a Laravel app expects:
// X-CSRF-TOKEN on every state-changing request and, where the caller gives
// one, X-Socket-ID so that broadcast(...)->toOthers() skips this browser.
// (Echo adds X-Socket-ID to axios, jQuery and Turbo requests by itself; this
// app uses fetch, so it sets the header here.)

export class ApiError extends Error {
  constructor(status, message, errors) {
    super(message);
    this.status = status;
    this.errors = errors ?? null;
  }
}

function csrfMeta() {
  return document.querySelector('meta[name="csrf-token"]');
}

/** Stores the session's CSRF token where Laravel Echo and these requests read it. */
export function setCsrfToken(token) {
  csrfMeta()?.setAttribute('content', token);
}

async function request(method, path, { body, socketId } = {}) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
  }
  if (method !== 'GET') {
    headers['X-CSRF-TOKEN'] = csrfMeta()?.getAttribute('content') ?? '';
  }
  if (socketId) {
    headers['X-Socket-ID'] = socketId;
  }

  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: 'same-origin',
  });
  const payload = await response.json().catch(() => null);
  if (!response.ok) {
    const message = payload?.message || `${method} ${path} failed with HTTP status ${response.status}`;
    throw new ApiError(response.status, message, payload?.errors);
  }
  return payload;
}

export const api = {
  session: () => request('GET', '/api/session'),
  users: () => request('GET', '/api/users'),
  signIn: (userId) => request('POST', '/login', { body: { user_id: userId } }),
  signOut: () => request('POST', '/logout'),
  warehouses: () => request('GET', '/api/warehouses'),
  inventory: (warehouseId) => request('GET', `/api/warehouses/${warehouseId}/inventory`),
  updateStock: (warehouseId, sku, quantity, socketId) =>
    request('PATCH', `/api/warehouses/${warehouseId}/inventory/${encodeURIComponent(sku)}`, {
      body: { quantity },
      socketId,
    }),
};
