// Waiting with deadlines. Tests wait for a condition or an event, never for
// a fixed time, so a slow machine makes them slower rather than failing
// them, up to each wait's timeout.

export const EVENT_TIMEOUT_MS = 8000;

/**
 * Polls `condition` (sync or async) every `interval` ms until it returns a
 * truthy value, and returns that value. Throws "timed out waiting for
 * <what>" after `timeout` ms. An exception thrown by `condition` ends the
 * wait at once.
 */
export async function waitUntil(condition, { timeout = EVENT_TIMEOUT_MS, interval = 50, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let lastValue;
  for (;;) {
    lastValue = await condition();
    if (lastValue) {
      return lastValue;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last value: ${JSON.stringify(lastValue)})`);
    }
    await new Promise((resolve) => setTimeout(resolve, interval));
  }
}

/** Resolves like `promise`, or rejects with "timed out waiting for <what>" after `timeout` ms. */
export function withTimeout(promise, timeout, what) {
  let timer;
  const deadline = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${timeout} ms waiting for ${what}`)), timeout);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/**
 * Ordered log of received items that tests can wait on. `waitFor` returns
 * the first item (received before or after the call) that matches.
 */
export class Inbox {
  constructor(name) {
    this.name = name;
    this.items = [];
    this.waiters = new Set();
    this.onItem = null; // optional callback run for each new item
  }

  push(item) {
    this.items.push(item);
    this.onItem?.(item);
    for (const waiter of [...this.waiters]) {
      if (item.index >= waiter.since && waiter.predicate(item)) {
        this.waiters.delete(waiter);
        clearTimeout(waiter.timer);
        waiter.resolve(item);
      }
    }
  }

  /** Position of the next item, for `waitFor(…, { since })`. */
  mark() {
    return this.items.length;
  }

  /** Items at or after `since` that match `predicate`. */
  filter(predicate, since = 0) {
    return this.items.filter((item) => item.index >= since && predicate(item));
  }

  waitFor(predicate, { timeout = EVENT_TIMEOUT_MS, what = 'a matching item', since = 0 } = {}) {
    const found = this.items.find((item) => item.index >= since && predicate(item));
    if (found) {
      return Promise.resolve(found);
    }
    return new Promise((resolve, reject) => {
      const waiter = { predicate, since, resolve };
      waiter.timer = setTimeout(() => {
        this.waiters.delete(waiter);
        const recent = this.items.slice(-10).map((item) => item.text ?? JSON.stringify(item));
        reject(new Error(`${this.name}: timed out after ${timeout} ms waiting for ${what}; last items received:\n  ${recent.join('\n  ')}`));
      }, timeout);
      this.waiters.add(waiter);
    });
  }
}
