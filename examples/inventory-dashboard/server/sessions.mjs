// Cookie sessions with a CSRF token, the way Laravel's `web` middleware
// group keeps them: every visitor gets a session, signing in regenerates
// its id and token, and state-changing requests must send the token in the
// X-CSRF-TOKEN header.

import crypto from 'node:crypto';

export const SESSION_COOKIE = 'herald_demo_session';

const IDLE_LIFETIME_MS = 2 * 60 * 60 * 1000; // Laravel's default SESSION_LIFETIME is 120 minutes
const MAX_SESSIONS = 10_000; // bounds memory when clients never send the cookie back

function randomToken() {
  return crypto.randomBytes(20).toString('hex');
}

function parseCookies(header) {
  const cookies = new Map();
  for (const part of (header ?? '').split(';')) {
    const index = part.indexOf('=');
    if (index > 0) {
      cookies.set(part.slice(0, index).trim(), part.slice(index + 1).trim());
    }
  }
  return cookies;
}

export class SessionStore {
  constructor({ now = () => Date.now() } = {}) {
    this.sessions = new Map(); // id -> {id, csrfToken, userId, gatewayPort, lastSeen}
    this.now = now;
  }

  /**
   * Returns the session named by the request's cookie, or a new guest
   * session. `isNew` is true when the caller must send the cookie.
   */
  resolve(request) {
    const id = parseCookies(request.headers.cookie).get(SESSION_COOKIE);
    const existing = id ? this.sessions.get(id) : undefined;
    if (existing && this.now() - existing.lastSeen < IDLE_LIFETIME_MS) {
      existing.lastSeen = this.now();
      return { session: existing, isNew: false };
    }
    if (existing) {
      this.sessions.delete(id);
    }
    return { session: this.#create({ userId: null }), isNew: true };
  }

  /** Moves `session`'s data to a new id and CSRF token, as Laravel's session()->regenerate() does at sign-in. */
  regenerate(session, changes = {}) {
    this.sessions.delete(session.id);
    return this.#create({ userId: session.userId, gatewayPort: session.gatewayPort, ...changes });
  }

  /** Deletes `session` and returns a new guest session, as Laravel's session()->invalidate() does at sign-out. */
  invalidate(session) {
    this.sessions.delete(session.id);
    return this.#create({ userId: null });
  }

  /** Value of the Set-Cookie header that stores `session` in the browser. */
  cookieFor(session) {
    return `${SESSION_COOKIE}=${session.id}; Path=/; HttpOnly; SameSite=Lax`;
  }

  /** True when `token` equals the session's CSRF token (compared in constant time). */
  checkCsrfToken(session, token) {
    if (typeof token !== 'string' || token.length !== session.csrfToken.length) {
      return false;
    }
    return crypto.timingSafeEqual(Buffer.from(token), Buffer.from(session.csrfToken));
  }

  #create(data) {
    this.#evictIfFull();
    const session = { gatewayPort: null, ...data, id: randomToken(), csrfToken: randomToken(), lastSeen: this.now() };
    this.sessions.set(session.id, session);
    return session;
  }

  // Drops expired sessions, then the least recently used ones while the store is full.
  #evictIfFull() {
    if (this.sessions.size < MAX_SESSIONS) {
      return;
    }
    const cutoff = this.now() - IDLE_LIFETIME_MS;
    for (const [id, session] of this.sessions) {
      if (session.lastSeen < cutoff) {
        this.sessions.delete(id);
      }
    }
    const byAge = [...this.sessions.values()].sort((a, b) => a.lastSeen - b.lastSeen);
    for (const session of byAge.slice(0, this.sessions.size - MAX_SESSIONS + 1)) {
      this.sessions.delete(session.id);
    }
  }
}
