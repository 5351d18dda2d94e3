// pusher-js 8 clients connected to a gateway the way a browser app connects
// to a self-hosted server. Private channels are authorized by the `pusher`
// Node SDK (authorizeChannel), the same call a real backend's auth endpoint
// makes, handed to pusher-js through channelAuthorization.customHandler.

import PusherJs from 'pusher-js';

import { EVENT_TIMEOUT_MS, Inbox, withTimeout } from './wait.mjs';

/**
 * Returns pusher-js options for gateway `port` (the settings a Laravel Echo
 * 'reverb' setup passes). `presenceUser` ({ user_id, user_info }) is the
 * channel_data the backend signs for presence channels.
 */
export function pusherJsOptions(port, backend, presenceUser) {
  return {
    cluster: '',
    wsHost: '127.0.0.1',
    wsPort: port,
    wssPort: port,
    forceTLS: false,
    enabledTransports: ['ws', 'wss'],
    disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) => {
        try {
          const channelData = channelName.startsWith('presence-') ? presenceUser : undefined;
          callback(null, backend.authorizeChannel(socketId, channelName, channelData));
        } catch (error) {
          callback(error, null);
        }
      },
    },
  };
}

export class PusherJsClient {
  /**
   * name: label used in failure messages.
   * backend: the `pusher` SDK instance that signs channel authorizations.
   * presenceUser: { user_id, user_info } for presence channels.
   */
  constructor(cluster, gatewayIndex, { name, backend = cluster.sdk(), presenceUser }) {
    this.name = name;
    this.inbox = new Inbox(name);
    const options = pusherJsOptions(cluster.gatewayPort(gatewayIndex), backend, presenceUser);
    this.pusher = new PusherJs(cluster.app.key, options);
  }

  /** Connects and waits for the 'connected' state; returns the client. */
  static async connect(cluster, gatewayIndex, options) {
    const client = new PusherJsClient(cluster, gatewayIndex, options);
    await client.connected();
    return client;
  }

  connected(timeout = EVENT_TIMEOUT_MS) {
    const connection = this.pusher.connection;
    if (connection.state === 'connected') {
      return Promise.resolve(connection.socket_id);
    }
    const reached = new Promise((resolve, reject) => {
      connection.bind('connected', () => resolve(connection.socket_id));
      connection.bind('failed', () => reject(new Error(`${this.name}: pusher-js connection failed`)));
    });
    return withTimeout(reached, timeout, `${this.name} to connect`);
  }

  get socketId() {
    return this.pusher.connection.socket_id;
  }

  /**
   * Subscribes to `channelName`, records every event on it, and waits for
   * pusher:subscription_succeeded. Rejects on pusher:subscription_error.
   */
  subscribe(channelName, timeout = EVENT_TIMEOUT_MS) {
    const channel = this.pusher.subscribe(channelName);
    channel.bind_global((event, data) => {
      this.inbox.push({ index: this.inbox.mark(), channel: channelName, event, data });
    });
    const outcome = new Promise((resolve, reject) => {
      channel.bind('pusher:subscription_succeeded', () => resolve(channel));
      channel.bind('pusher:subscription_error', (error) => {
        reject(new Error(`${this.name}: subscription to ${channelName} failed: ${JSON.stringify(error)}`));
      });
    });
    return withTimeout(outcome, timeout, `${this.name} to subscribe to ${channelName}`);
  }

  unsubscribe(channelName) {
    this.pusher.unsubscribe(channelName);
  }

  /** Application events received so far (pusher: events left out). */
  appEvents(since = 0) {
    return this.inbox
      .filter((item) => !item.event.startsWith('pusher:'), since)
      .map(({ channel, event, data }) => ({ channel, event, data }));
  }

  waitForEvent(channel, event, { since = 0, timeout = EVENT_TIMEOUT_MS } = {}) {
    return this.inbox.waitFor((item) => item.channel === channel && item.event === event, {
      since,
      timeout,
      what: `event ${event} on ${channel}`,
    });
  }

  disconnect() {
    this.pusher.disconnect();
  }
}
