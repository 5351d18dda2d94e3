// A WebSocket client at the frame level (the `ws` package), for testing the
// gateway's protocol handling byte by byte.

import WebSocket from 'ws';

import { EVENT_TIMEOUT_MS, Inbox, withTimeout } from './wait.mjs';

export const SOCKET_ID_PATTERN = /^\d+\.\d+$/;

export class RawClient {
  /**
   * Opens `url`. options.autoPong=false stops `ws` from answering RFC 6455
   * ping frames, so the client looks dead to a server that pings.
   */
  constructor(url, { autoPong = true, name = 'raw client', localAddress } = {}) {
    this.url = url;
    this.name = name;
    this.inbox = new Inbox(name);
    this.socket = new WebSocket(url, { autoPong, localAddress });
    this.protocolPings = 0;

    this.opened = new Promise((resolve, reject) => {
      this.socket.once('open', resolve);
      this.socket.once('error', reject);
      this.socket.once('unexpected-response', (request, response) => {
        reject(new Error(`${name}: HTTP ${response.statusCode} instead of a WebSocket upgrade for ${url}`));
      });
    });
    this.opened.catch(() => {});

    this.closed = new Promise((resolve) => {
      this.socket.once('close', (code, reason) => resolve({ code, reason: reason.toString() }));
    });

    this.socket.on('message', (data, isBinary) => {
      const text = isBinary ? null : data.toString('utf8');
      let frame = null;
      if (text !== null) {
        try {
          frame = JSON.parse(text);
        } catch {
          frame = null;
        }
      }
      this.inbox.push({ index: this.inbox.mark(), text, frame, isBinary });
    });
    this.socket.on('ping', () => {
      this.protocolPings += 1;
    });
    // A closed or reset socket is reported through `closed`. Without this
    // listener, an 'error' event after open would crash the test process.
    this.socket.on('error', () => {});
  }

  /** Connects, waits for pusher:connection_established and returns the client. */
  static async connect(url, options = {}) {
    const client = new RawClient(url, options);
    // Promise.all rejects as soon as the upgrade fails, without waiting for
    // the connection_established timeout.
    await Promise.all([client.opened, client.established()]);
    return client;
  }

  /** Waits for pusher:connection_established and returns its decoded data. */
  async established(timeout = EVENT_TIMEOUT_MS) {
    const item = await this.waitForEvent('pusher:connection_established', { timeout });
    const data = JSON.parse(item.frame.data);
    this.socketId = data.socket_id;
    this.activityTimeout = data.activity_timeout;
    return data;
  }

  get isOpen() {
    return this.socket.readyState === WebSocket.OPEN;
  }

  send(frame) {
    this.socket.send(JSON.stringify(frame));
  }

  sendText(text) {
    this.socket.send(text, { binary: false });
  }

  sendBinary(buffer) {
    this.socket.send(buffer, { binary: true });
  }

  mark() {
    return this.inbox.mark();
  }

  /** Frames received so far (at or after `since`) with this event name and, if given, channel. */
  events(event, { channel, since = 0 } = {}) {
    return this.inbox.filter(
      (item) => item.frame?.event === event && (channel === undefined || item.frame.channel === channel),
      since,
    );
  }

  waitForFrame(predicate, options = {}) {
    return this.inbox.waitFor((item) => item.frame !== null && predicate(item.frame), options);
  }

  waitForEvent(event, { channel, since = 0, timeout = EVENT_TIMEOUT_MS } = {}) {
    const what = channel === undefined ? `event ${event}` : `event ${event} on channel ${channel}`;
    return this.inbox.waitFor(
      (item) => item.frame?.event === event && (channel === undefined || item.frame.channel === channel),
      { since, timeout, what },
    );
  }

  /** Sends pusher:ping and waits for the pusher:pong that follows it. */
  async ping(timeout = EVENT_TIMEOUT_MS) {
    const since = this.mark();
    this.send({ event: 'pusher:ping', data: {} });
    return this.waitForEvent('pusher:pong', { since, timeout });
  }

  /** Subscribes and waits for subscription_succeeded (or rejects with the error frame). */
  async subscribe(channel, extra = {}, timeout = EVENT_TIMEOUT_MS) {
    const since = this.mark();
    this.send({ event: 'pusher:subscribe', data: { channel, ...extra } });
    const item = await this.inbox.waitFor(
      (entry) =>
        entry.frame !== null &&
        ((entry.frame.channel === channel &&
          (entry.frame.event === 'pusher_internal:subscription_succeeded' ||
            entry.frame.event === 'pusher:subscription_error')) ||
          entry.frame.event === 'pusher:error'),
      { since, timeout, what: `subscription reply for ${channel}` },
    );
    if (item.frame.event !== 'pusher_internal:subscription_succeeded') {
      throw new Error(`${this.name}: subscribing to ${channel} failed: ${item.text}`);
    }
    return item.frame;
  }

  waitForClose(timeout = EVENT_TIMEOUT_MS) {
    return withTimeout(this.closed, timeout, `${this.name} to be closed by the server`);
  }

  close() {
    if (this.socket.readyState === WebSocket.OPEN || this.socket.readyState === WebSocket.CONNECTING) {
      this.socket.terminate();
    }
  }
}
