// Laravel Echo 2 clients configured the two ways Laravel's broadcasting
// documentation configures them for a self-hosted server: broadcaster
// 'reverb' and broadcaster 'pusher' with wsHost and wsPort. Each client
// records what its listeners receive, so tests can wait for events and
// count them.

import Echo from 'laravel-echo';
import PusherJs from 'pusher-js';

import { EVENT_TIMEOUT_MS, Inbox, withTimeout } from './wait.mjs';

/**
 * Echo options per broadcaster, for app key `key` and gateway port `port`.
 * 'reverb' is what `php artisan install:broadcasting` writes to
 * resources/js/echo.js. 'pusher' is Laravel's Pusher setup with the host
 * overridden, where `cluster` is required by pusher-js but unused once
 * wsHost is set.
 */
export const ECHO_CONFIGS = [
  {
    broadcaster: 'reverb',
    options: ({ key, port }) => ({
      broadcaster: 'reverb',
      key,
      wsHost: '127.0.0.1',
      wsPort: port,
      wssPort: port,
      forceTLS: false,
      enabledTransports: ['ws', 'wss'],
    }),
  },
  {
    broadcaster: 'pusher',
    options: ({ key, port }) => ({
      broadcaster: 'pusher',
      key,
      cluster: 'mt1',
      wsHost: '127.0.0.1',
      wsPort: port,
      wssPort: port,
      forceTLS: false,
      enabledTransports: ['ws', 'wss'],
    }),
  },
];

export class EchoClient {
  /**
   * name: label used in failure messages.
   * options: Echo options (from ECHO_CONFIGS plus authEndpoint and auth).
   *   pusher-js is handed over with the `Pusher` option because Node has
   *   no window.Pusher.
   */
  constructor(name, options) {
    this.name = name;
    this.echo = new Echo({ ...options, Pusher: PusherJs });
    // Listener calls, as { index, label, payload, metadata }.
    this.inbox = new Inbox(name);
    // pusher-js 'error' events of the connection, such as a pusher:error frame.
    this.errors = new Inbox(`${name} connection errors`);
    // Every connection state pusher-js went through, in order.
    this.states = [this.pusher.connection.state];
    this.pusher.connection.bind('error', (error) => {
      this.errors.push({ index: this.errors.mark(), ...error });
    });
    this.pusher.connection.bind('state_change', ({ current }) => {
      this.states.push(current);
    });
  }

  /** Creates a client and waits until it is connected. */
  static async connect(name, options, timeout = EVENT_TIMEOUT_MS) {
    const client = new EchoClient(name, options);
    const connection = client.pusher.connection;
    const reached = new Promise((resolve, reject) => {
      if (connection.state === 'connected') {
        resolve();
        return;
      }
      connection.bind('connected', resolve);
      connection.bind('failed', () => reject(new Error(`${name}: pusher-js connection failed`)));
    });
    try {
      await withTimeout(reached, timeout, `${name} to connect`);
    } catch (error) {
      client.disconnect();
      throw error;
    }
    return client;
  }

  /** The pusher-js instance Echo created. */
  get pusher() {
    return this.echo.connector.pusher;
  }

  socketId() {
    return this.echo.socketId();
  }

  /** Returns a listener callback that records each call under `label`. */
  recorder(label) {
    return (payload, metadata) => {
      this.inbox.push({ index: this.inbox.mark(), label, payload, metadata });
    };
  }

  /** Calls recorded under `label` (at or after `since`). */
  received(label, since = 0) {
    return this.inbox.filter((item) => item.label === label, since);
  }

  /** Waits for a call recorded under `label` whose payload matches `predicate`. */
  waitFor(label, predicate = () => true, { since = 0, timeout = EVENT_TIMEOUT_MS } = {}) {
    return this.inbox.waitFor((item) => item.label === label && predicate(item.payload), {
      since,
      timeout,
      what: `a call of the ${label} listener`,
    });
  }

  disconnect() {
    this.echo.disconnect();
  }
}

/**
 * Resolves when Echo reports `channel` subscribed and rejects on its
 * subscription error. Call it right after creating the channel, because
 * pusher-js does not replay pusher:subscription_succeeded to a callback
 * bound later.
 */
export function subscribed(channel, timeout = EVENT_TIMEOUT_MS) {
  const outcome = new Promise((resolve, reject) => {
    channel.subscribed(resolve);
    channel.error((error) => reject(new Error(`subscribing to ${channel.name} failed: ${JSON.stringify(error)}`)));
  });
  return withTimeout(outcome, timeout, `Echo to subscribe to ${channel.name}`);
}
