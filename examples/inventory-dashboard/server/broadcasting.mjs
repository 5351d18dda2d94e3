// The Laravel app's broadcasting layer, built on the `pusher` Node SDK:
// the channel rules of routes/channels.php, the /broadcasting/auth
// responses of Laravel's PusherBroadcaster, and the InventoryUpdated event.

import Pusher from 'pusher';

import { publicUser } from './store.mjs';

// Without broadcastAs(), Laravel names a broadcast event after its class.
// Echo's .listen('InventoryUpdated') binds this name through its default
// namespace App.Events.
export const INVENTORY_UPDATED = 'App\\Events\\InventoryUpdated';

const SOCKET_ID_PATTERN = /^\d+\.\d+$/;

/** Presence channel of warehouse `warehouseId`, as Echo.join(`warehouse.${id}`) subscribes it. */
export function warehouseChannel(warehouseId) {
  return `presence-warehouse.${warehouseId}`;
}

export function isValidSocketId(socketId) {
  return typeof socketId === 'string' && SOCKET_ID_PATTERN.test(socketId);
}

// Laravel's Broadcaster::normalizeChannelName: the channel callbacks are
// registered without the private-, private-encrypted- or presence- prefix.
function normalizeChannelName(channelName) {
  for (const prefix of ['private-encrypted-', 'private-', 'presence-']) {
    if (channelName.startsWith(prefix)) {
      return channelName.slice(prefix.length);
    }
  }
  return channelName;
}

/**
 * Builds the rules of routes/channels.php. Each rule's authorize() returns
 * false to deny, true to allow a private channel, or the user_info of a
 * presence member.
 */
function channelRules(store) {
  return [
    // Broadcast::channel('App.Models.User.{id}', fn ($user, $id) => (int) $user->id === (int) $id);
    {
      pattern: /^App\.Models\.User\.(\d+)$/,
      authorize: (user, [id]) => user.id === Number(id),
    },
    // Broadcast::channel('warehouse.{warehouse}', fn ($user, Warehouse $warehouse) =>
    //     $user->canAccess($warehouse) ? ['id' => $user->id, 'name' => $user->name] : false);
    {
      pattern: /^warehouse\.(\d+)$/,
      authorize: (user, [id]) => {
        const warehouse = store.findWarehouse(Number(id));
        return warehouse !== null && store.canAccessWarehouse(user, warehouse.id) ? publicUser(user) : false;
      },
    },
  ];
}

export class Broadcasting {
  constructor(config, store, log) {
    this.store = store;
    this.log = log;
    this.rules = channelRules(store);
    this.pusher = new Pusher({
      appId: config.app.id,
      key: config.app.key,
      secret: config.app.secret,
      host: config.relay.host,
      port: String(config.relay.port),
      useTLS: false,
      // Laravel's Guzzle client gives up after 30 s; a demo should fail sooner.
      timeout: 10_000,
    });
    // Events of one channel are sent one after another, in the order the
    // store applied the changes.
    this.channelQueues = new Map();
  }

  /**
   * Authorizes a POST /broadcasting/auth request of `user` (null for a
   * guest) like Laravel's PusherBroadcaster. Returns {status: 200, body}
   * with body {auth} for a private channel and {auth, channel_data} for a
   * presence channel, or {status: 403 or 400, body: {message}}.
   */
  authorize(user, socketId, channelName) {
    const guarded = typeof channelName === 'string' && (channelName.startsWith('private-') || channelName.startsWith('presence-'));
    if (!guarded || !user) {
      return { status: 403, body: { message: 'This action is unauthorized.' } };
    }
    if (!isValidSocketId(socketId)) {
      return { status: 400, body: { message: `Invalid socket_id ${JSON.stringify(socketId)}: expected digits.digits` } };
    }

    const result = this.#checkChannel(user, normalizeChannelName(channelName));
    if (result === false) {
      return { status: 403, body: { message: 'This action is unauthorized.' } };
    }

    if (channelName.startsWith('private-')) {
      if (channelName.startsWith('private-encrypted-')) {
        // Needs the app's encryption master key, which Herald's dev app does not have.
        return { status: 403, body: { message: 'Encrypted channels are not configured in this demo.' } };
      }
      const { auth } = this.pusher.authorizeChannel(socketId, channelName);
      return { status: 200, body: { auth } };
    }

    // pusher-http-php 7 casts the presence user_id to a string and leaves
    // user_info out when the channel callback returned nothing useful.
    const presenceData = { user_id: String(user.id) };
    if (result && result !== true) {
      presenceData.user_info = result;
    }
    const { auth, channel_data: channelData } = this.pusher.authorizeChannel(socketId, channelName, presenceData);
    return { status: 200, body: { auth, channel_data: channelData } };
  }

  /**
   * Sends InventoryUpdated for `item` of warehouse `warehouseId` through the
   * relay, leaving out the connection `socketId` (Laravel's toOthers()) when
   * it is given. Rejects when the relay does not accept the event.
   */
  inventoryUpdated(warehouseId, item, socketId) {
    const channel = warehouseChannel(warehouseId);
    const data = { sku: item.sku, quantity: item.quantity, updated_by: item.updated_by, version: item.version };
    const params = socketId ? { socket_id: socketId } : undefined;

    const previous = this.channelQueues.get(channel) ?? Promise.resolve();
    const sent = previous.catch(() => {}).then(() => this.pusher.trigger(channel, INVENTORY_UPDATED, data, params));
    this.channelQueues.set(channel, sent);
    sent.catch(() => {}).finally(() => {
      if (this.channelQueues.get(channel) === sent) {
        this.channelQueues.delete(channel);
      }
    });
    return sent;
  }

  #checkChannel(user, name) {
    for (const rule of this.rules) {
      const match = rule.pattern.exec(name);
      if (match) {
        return rule.authorize(user, match.slice(1));
      }
    }
    // Laravel denies a channel that no rule matches.
    return false;
  }
}
