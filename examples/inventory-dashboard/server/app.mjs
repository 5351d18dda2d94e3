// HTTP routes of the demo backend. It plays the Laravel app: sessions and
// sign-in, the inventory API, /broadcasting/auth, and the built front end.

import { Broadcasting, isValidSocketId } from './broadcasting.mjs';
import { SessionStore } from './sessions.mjs';
import { StaticFiles } from './static-files.mjs';
import { MAX_QUANTITY, Store, publicUser } from './store.mjs';

const MAX_BODY_BYTES = 16 * 1024;
const SAFE_METHODS = new Set(['GET', 'HEAD']);

class HttpError extends Error {
  constructor(status, message, extra = {}) {
    super(message);
    this.status = status;
    this.extra = extra;
  }
}

function readBody(request) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    request.on('data', (chunk) => {
      size += chunk.length;
      // Past the limit the rest of the body is read and dropped, so the
      // client still receives the 413 response.
      if (size <= MAX_BODY_BYTES) {
        chunks.push(chunk);
      }
    });
    request.on('end', () => {
      if (size > MAX_BODY_BYTES) {
        reject(new HttpError(413, `Request body is larger than ${MAX_BODY_BYTES} bytes`));
        return;
      }
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    request.on('error', reject);
  });
}

// Parses a JSON or form-encoded body into a plain object, as Laravel's
// $request->input() accepts both. pusher-js posts its auth request as a form.
async function readInput(request) {
  const text = await readBody(request);
  const type = (request.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
  if (type === 'application/json') {
    try {
      const value = JSON.parse(text === '' ? '{}' : text);
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        throw new Error('not an object');
      }
      return value;
    } catch (error) {
      throw new HttpError(400, `Invalid JSON body: ${error.message}`);
    }
  }
  if (type === 'application/x-www-form-urlencoded') {
    return Object.fromEntries(new URLSearchParams(text));
  }
  if (text === '') {
    return {};
  }
  throw new HttpError(415, `Unsupported Content-Type ${JSON.stringify(type)}: send application/json or application/x-www-form-urlencoded`);
}

function parseId(text, resourceName) {
  if (!/^\d{1,9}$/.test(text)) {
    throw new HttpError(404, `${resourceName} ${JSON.stringify(text)} not found`);
  }
  return Number(text);
}

/**
 * Creates the request handler. `log(level, message, fields)` receives one
 * line per request and every error the handler catches.
 */
export function createApp(config, { distDir, log }) {
  const store = new Store();
  const sessions = new SessionStore();
  const broadcasting = new Broadcasting(config, store, log);
  const staticFiles = new StaticFiles(distDir);
  let nextGateway = 0;

  // Echo options for a signed-in session, the values a Laravel app takes
  // from VITE_REVERB_* at build time. Sessions are spread over the gateways
  // in turn, as a load balancer in front of them would.
  function echoOptions(session) {
    return {
      broadcaster: 'reverb',
      key: config.app.key,
      wsHost: config.websocket.host,
      wsPort: session.gatewayPort,
      wssPort: session.gatewayPort,
      forceTLS: false,
      enabledTransports: ['ws', 'wss'],
    };
  }

  function sessionPayload(context) {
    const user = context.user;
    return {
      user: user ? publicUser(user) : null,
      csrf_token: context.session.csrfToken,
      echo: user ? echoOptions(context.session) : null,
    };
  }

  function requireUser(context) {
    if (!context.user) {
      throw new HttpError(401, 'Unauthenticated.');
    }
    return context.user;
  }

  function requireWarehouse(context, idText) {
    const user = requireUser(context);
    const warehouse = store.findWarehouse(parseId(idText, 'Warehouse'));
    if (!warehouse) {
      throw new HttpError(404, `Warehouse ${idText} not found`);
    }
    if (!store.canAccessWarehouse(user, warehouse.id)) {
      throw new HttpError(403, `You may not open warehouse ${warehouse.id}.`);
    }
    return warehouse;
  }

  function replaceSession(context, session) {
    context.session = session;
    context.user = session.userId === null ? null : store.findUser(session.userId);
    context.setCookie = sessions.cookieFor(session);
  }

  const routes = [
    ['GET', /^\/api\/users$/, () => ({ users: store.listUsers() })],

    ['GET', /^\/api\/session$/, (context) => sessionPayload(context)],

    ['POST', /^\/login$/, async (context) => {
      const input = await readInput(context.request);
      const user = store.findUser(Number(input.user_id));
      if (!user) {
        throw new HttpError(422, 'The selected user is invalid.', { errors: { user_id: ['The selected user is invalid.'] } });
      }
      const gatewayPort = config.websocket.ports[nextGateway % config.websocket.ports.length];
      nextGateway += 1;
      replaceSession(context, sessions.regenerate(context.session, { userId: user.id, gatewayPort }));
      log('info', 'signed in', { user_id: user.id, gateway_port: gatewayPort });
      return sessionPayload(context);
    }],

    ['POST', /^\/logout$/, (context) => {
      const userId = context.user?.id ?? null;
      replaceSession(context, sessions.invalidate(context.session));
      log('info', 'signed out', { user_id: userId });
      return sessionPayload(context);
    }],

    ['GET', /^\/api\/warehouses$/, (context) => ({ warehouses: store.warehousesFor(requireUser(context)) })],

    ['GET', /^\/api\/warehouses\/([^/]+)\/inventory$/, (context, [idText]) => {
      const warehouse = requireWarehouse(context, idText);
      return { warehouse, items: store.listItems(warehouse.id) };
    }],

    ['PATCH', /^\/api\/warehouses\/([^/]+)\/inventory\/([^/]+)$/, async (context, [idText, skuText]) => {
      const warehouse = requireWarehouse(context, idText);
      const user = context.user;
      const input = await readInput(context.request);

      const quantity = typeof input.quantity === 'string' && /^\d+$/.test(input.quantity) ? Number(input.quantity) : input.quantity;
      if (!Number.isInteger(quantity) || quantity < 0 || quantity > MAX_QUANTITY) {
        const message = `The quantity must be a whole number from 0 to ${MAX_QUANTITY}.`;
        throw new HttpError(422, message, { errors: { quantity: [message] } });
      }
      // Echo's axios interceptor sends this header, and Laravel's toOthers() reads it.
      const socketId = context.request.headers['x-socket-id'];
      if (socketId !== undefined && !isValidSocketId(socketId)) {
        throw new HttpError(400, `Invalid X-Socket-ID header ${JSON.stringify(socketId)}: expected digits.digits`);
      }

      let sku;
      try {
        sku = decodeURIComponent(skuText);
      } catch {
        throw new HttpError(404, `SKU ${JSON.stringify(skuText)} not found`);
      }
      const item = store.setQuantity(warehouse.id, sku, quantity, user);
      if (!item) {
        throw new HttpError(404, `SKU ${JSON.stringify(sku)} not found in warehouse ${warehouse.id}`);
      }

      // broadcast(new InventoryUpdated(...))->toOthers() with ShouldBroadcastNow:
      // the change is saved whether or not the relay accepts the event.
      try {
        await broadcasting.inventoryUpdated(warehouse.id, item, socketId);
        log('info', 'broadcast InventoryUpdated', { warehouse_id: warehouse.id, sku, quantity, version: item.version, socket_id: socketId ?? null });
        return { item, broadcast: 'sent' };
      } catch (error) {
        log('error', 'broadcasting InventoryUpdated failed', { warehouse_id: warehouse.id, sku, error: error.message, status: error.status ?? null, body: error.body ?? null });
        return { item, broadcast: 'failed' };
      }
    }],

    ['POST', /^\/broadcasting\/auth$/, async (context) => {
      const input = await readInput(context.request);
      const { status, body } = broadcasting.authorize(context.user, input.socket_id, input.channel_name);
      if (status !== 200) {
        log('info', 'channel authorization denied', { user_id: context.user?.id ?? null, channel: input.channel_name ?? null, status });
        throw new HttpError(status, body.message);
      }
      return body;
    }],
  ];

  async function route(context) {
    const { request, url } = context;
    let methodMismatch = false;
    for (const [method, pattern, handler] of routes) {
      const match = pattern.exec(url.pathname);
      if (!match) {
        continue;
      }
      if (method !== request.method) {
        methodMismatch = true;
        continue;
      }
      if (!SAFE_METHODS.has(request.method) && !sessions.checkCsrfToken(context.session, request.headers['x-csrf-token'])) {
        throw new HttpError(419, 'CSRF token mismatch.');
      }
      return { status: 200, body: await handler(context, match.slice(1)) };
    }
    if (methodMismatch) {
      throw new HttpError(405, `Method ${request.method} is not allowed for ${url.pathname}`);
    }
    if (url.pathname.startsWith('/api/') || !SAFE_METHODS.has(request.method)) {
      throw new HttpError(404, `${request.method} ${url.pathname} not found`);
    }
    return { file: await staticFiles.get(url.pathname, context.session.csrfToken) };
  }

  return async function handle(request, response) {
    const started = Date.now();
    const url = new URL(request.url, 'http://localhost');
    const { session, isNew } = sessions.resolve(request);
    const context = {
      request,
      url,
      session,
      user: session.userId === null ? null : store.findUser(session.userId),
      setCookie: isNew ? sessions.cookieFor(session) : null,
    };

    let status;
    let headers;
    let body;
    try {
      const result = await route(context);
      if (result.file) {
        ({ status, headers, body } = result.file);
      } else {
        status = result.status;
        headers = { 'content-type': 'application/json' };
        body = JSON.stringify(result.body);
      }
    } catch (error) {
      if (error instanceof HttpError) {
        status = error.status;
      } else {
        status = 500;
        log('error', 'request failed', { method: request.method, path: url.pathname, error: error.stack ?? String(error) });
      }
      headers = { 'content-type': 'application/json' };
      body = JSON.stringify({ message: status === 500 ? 'Server Error' : error.message, ...(error.extra ?? {}) });
    }

    if (context.setCookie) {
      headers['set-cookie'] = context.setCookie;
    }
    response.writeHead(status, headers);
    response.end(request.method === 'HEAD' ? undefined : body);
    log('info', 'request', { method: request.method, path: url.pathname, status, ms: Date.now() - started, user_id: context.user?.id ?? null });
  };
}
