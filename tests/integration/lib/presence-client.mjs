// pusher-js 8 clients that join presence channels as one user. The `pusher`
// Node SDK signs each presence subscription with the user's channel_data
// (authorizeChannel(socketId, channel, { user_id, user_info })), as a
// backend's auth endpoint does (see pusherJsOptions).
//
// Every frame the connection receives is recorded as pusher-js decoded it,
// so tests can count member events exactly. pusher-js's own events hide
// some of them: it emits no pusher:member_removed for a user it does not
// list, and a repeated member_added only overwrites the entry.

import PusherJs from 'pusher-js';

import { pusherJsOptions } from './pusher-client.mjs';
import { EVENT_TIMEOUT_MS, Inbox, waitUntil, withTimeout } from './wait.mjs';

export const MEMBER_ADDED = 'pusher_internal:member_added';
export const MEMBER_REMOVED = 'pusher_internal:member_removed';

export class PresenceClient {
  /**
   * user: the presence data the backend signs, { user_id, user_info }.
   * name: label used in failure messages.
   * backend: what signs the subscriptions, by default the `pusher` SDK,
   *   or any object with authorizeChannel(socketId, channel, channelData).
   */
  constructor(cluster, gatewayIndex, { name, user, backend = cluster.sdk() }) {
    this.name = name;
    this.user = user;
    this.inbox = new Inbox(name);
    const options = pusherJsOptions(cluster.gatewayPort(gatewayIndex), backend, user);
    this.pusher = new PusherJs(cluster.app.key, options);
    // pusher-js binds its own handler first, so a channel's member list
    // already includes an event when the event is recorded here. The data
    // is copied because pusher-js keeps the snapshot's hash as its member
    // list and deletes from it on member_removed.
    this.pusher.connection.bind('message', (message) => {
      this.inbox.push({
        index: this.inbox.mark(),
        event: message.event,
        channel: message.channel,
        data: structuredClone(message.data),
      });
    });
  }

  /** Connects and waits for the 'connected' state; returns the client. */
  static async connect(cluster, gatewayIndex, options) {
    const client = new PresenceClient(cluster, gatewayIndex, options);
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
   * Subscribes to `channelName` (presence or public) and waits for
   * pusher:subscription_succeeded; returns the pusher-js channel. Rejects
   * with an Error whose `data` is the subscription_error's data.
   */
  subscribe(channelName, timeout = EVENT_TIMEOUT_MS) {
    const channel = this.pusher.subscribe(channelName);
    const outcome = new Promise((resolve, reject) => {
      channel.bind('pusher:subscription_succeeded', () => resolve(channel));
      channel.bind('pusher:subscription_error', (data) => {
        const error = new Error(`${this.name}: subscription to ${channelName} failed: ${JSON.stringify(data)}`);
        error.data = data;
        reject(error);
      });
    });
    return withTimeout(outcome, timeout, `${this.name} to subscribe to ${channelName}`);
  }

  unsubscribe(channelName) {
    this.pusher.unsubscribe(channelName);
  }

  /** Sorted user ids in this client's pusher-js member list of `channelName`. */
  memberIds(channelName) {
    const channel = this.pusher.channel(channelName);
    if (!channel) {
      throw new Error(`${this.name} has no subscription to ${channelName}`);
    }
    const ids = [];
    channel.members.each((member) => ids.push(member.id));
    return ids.sort();
  }

  /** pusher-js's member count of `channelName`. */
  memberCount(channelName) {
    return this.pusher.channel(channelName).members.count;
  }

  /** Frames with this event name on `channelName` received at or after `since`. */
  frames(channelName, event, since = 0) {
    return this.inbox.filter((item) => item.channel === channelName && item.event === event, since);
  }

  /** user_id of each member_added (or member_removed) frame on `channelName`, in arrival order. */
  memberEventIds(channelName, event, since = 0) {
    return this.frames(channelName, event, since).map((item) => item.data.user_id);
  }

  /** Waits for a frame on `channelName` with this event name and, if given, matching `predicate`. */
  waitForFrame(channelName, event, { predicate = () => true, since = 0, timeout = EVENT_TIMEOUT_MS, what } = {}) {
    return this.inbox.waitFor(
      (item) => item.channel === channelName && item.event === event && predicate(item.data),
      { since, timeout, what: what ?? `${event} on ${channelName}` },
    );
  }

  /** Waits for the member event `event` about `userId` on `channelName`. */
  waitForMemberEvent(channelName, event, userId, options = {}) {
    return this.waitForFrame(channelName, event, {
      ...options,
      predicate: (data) => data.user_id === userId,
      what: `${event} of user ${userId} on ${channelName}`,
    });
  }

  disconnect() {
    this.pusher.disconnect();
  }
}

let markerSerial = 0;

/**
 * Triggers the event `marker` on `channelName` through the relay and waits
 * until each client received it; returns the marker's serial number.
 * Whatever Redis published on the channel before the trigger reached those
 * clients before the marker, because Redis delivers the messages of one
 * topic in order and each gateway forwards them in order.
 */
export async function sendMarker(cluster, channelName, clients, { timeout = EVENT_TIMEOUT_MS } = {}) {
  markerSerial += 1;
  const serial = markerSerial;
  await cluster.sdk().trigger(channelName, 'marker', { serial });
  await Promise.all(
    clients.map((client) =>
      client.waitForFrame(channelName, 'marker', {
        predicate: (data) => data?.serial === serial,
        timeout,
        what: `marker ${serial} on ${channelName}`,
      }),
    ),
  );
  return serial;
}

/**
 * Waits until Redis no longer lists `socketId` in the presence sockets of
 * `channelName`. The leave script removes the socket and publishes any
 * member_removed in one step, so after this a marker follows that event.
 */
export async function waitForPresenceLeave(cluster, channelName, socketId, { timeout = EVENT_TIMEOUT_MS } = {}) {
  const key = cluster.channelKey('sockets', channelName);
  await waitUntil(async () => !Object.hasOwn(await cluster.redisHash(key), socketId), {
    timeout,
    what: `socket ${socketId} to leave ${channelName} (HGETALL ${key})`,
  });
}
