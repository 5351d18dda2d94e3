// useWarehouse(warehouseId): joins the warehouse's presence channel with
// Laravel Echo and keeps its stock table and viewer list live.

import { useCallback, useEffect, useReducer } from 'react';

import { api } from './api.js';
import { useEcho } from './echo.jsx';

const MAX_ACTIVITY = 20;

const initialState = {
  status: 'joining', // joining, loading, ready or error
  error: null,
  items: [], // sorted by SKU; each {sku, name, quantity, version, updated_by, updated_at}
  viewers: [], // user_info values {id, name} of the presence members
  activity: [], // InventoryUpdated events received, newest first
  eventsReceived: 0,
};

// Keeps whichever copy of an item has the higher version, so an event that
// arrives after a newer snapshot (or the other way round) cannot undo it.
function mergeItem(items, incoming) {
  const index = items.findIndex((item) => item.sku === incoming.sku);
  if (index === -1) {
    return [...items, incoming].sort((a, b) => a.sku.localeCompare(b.sku));
  }
  const current = items[index];
  if (current.version >= incoming.version) {
    // Still take fields the older copy lacked, such as the name an event does not carry.
    return current.name === undefined && incoming.name !== undefined
      ? items.with(index, { ...current, name: incoming.name })
      : items;
  }
  return items.with(index, { ...current, ...incoming, name: incoming.name ?? current.name });
}

function addViewer(viewers, user) {
  return viewers.some((viewer) => viewer.id === user.id) ? viewers : [...viewers, user];
}

function reducer(state, action) {
  switch (action.type) {
    case 'reset':
      return initialState;
    case 'here':
      // Called on every (re)subscription with the full member list.
      return { ...state, status: state.status === 'ready' ? 'ready' : 'loading', error: null, viewers: action.users };
    case 'joining':
      return { ...state, viewers: addViewer(state.viewers, action.user) };
    case 'leaving':
      return { ...state, viewers: state.viewers.filter((viewer) => viewer.id !== action.user.id) };
    case 'snapshot':
      return { ...state, status: 'ready', items: action.items.reduce(mergeItem, state.items) };
    case 'saved':
      return { ...state, items: mergeItem(state.items, action.item) };
    case 'event': {
      const { event } = action;
      const entry = { ...event, receivedAt: action.receivedAt, key: `${event.sku}@${event.version}` };
      return {
        ...state,
        items: mergeItem(state.items, { sku: event.sku, quantity: event.quantity, version: event.version, updated_by: event.updated_by }),
        activity: [entry, ...state.activity].slice(0, MAX_ACTIVITY),
        eventsReceived: state.eventsReceived + 1,
      };
    }
    case 'error':
      return { ...state, status: 'error', error: action.message };
    default:
      throw new Error(`unknown action ${action.type}`);
  }
}

function describeSubscriptionError(error) {
  // pusher-js passes {type, error, status} for a failed auth request.
  if (error?.status === 403) {
    return 'You may not view this warehouse (the backend rejected /broadcasting/auth with 403).';
  }
  return `Could not join the warehouse channel: ${error?.error ?? error?.message ?? JSON.stringify(error)}`;
}

/**
 * Joins presence-warehouse.{warehouseId} and returns
 * {status, error, items, viewers, activity, eventsReceived, updateStock}.
 * updateStock(sku, quantity) saves a stock level and resolves to
 * {item, broadcast}, where broadcast is 'sent' or 'failed'.
 */
export function useWarehouse(warehouseId) {
  const echo = useEcho();
  const [state, dispatch] = useReducer(reducer, initialState);

  useEffect(() => {
    if (!echo || warehouseId == null) {
      return undefined;
    }
    let active = true;
    dispatch({ type: 'reset' });

    // The snapshot is loaded after each subscription succeeds, so a change
    // made while this page was disconnected still shows up after reconnecting.
    async function loadSnapshot() {
      try {
        const { items } = await api.inventory(warehouseId);
        if (active) {
          dispatch({ type: 'snapshot', items });
        }
      } catch (error) {
        if (active) {
          dispatch({ type: 'error', message: `Could not load the stock of warehouse ${warehouseId}: ${error.message}` });
        }
      }
    }

    const name = `warehouse.${warehouseId}`;
    echo
      .join(name)
      .here((users) => {
        dispatch({ type: 'here', users });
        loadSnapshot();
      })
      .joining((user) => dispatch({ type: 'joining', user }))
      .leaving((user) => dispatch({ type: 'leaving', user }))
      // The backend broadcasts without broadcastAs(), so the event is named
      // App\Events\InventoryUpdated; Echo adds the App.Events namespace.
      .listen('InventoryUpdated', (event) => dispatch({ type: 'event', event, receivedAt: Date.now() }))
      .error((error) => dispatch({ type: 'error', message: describeSubscriptionError(error) }));

    return () => {
      active = false;
      echo.leave(name);
    };
  }, [echo, warehouseId]);

  const updateStock = useCallback(
    async (sku, quantity) => {
      const result = await api.updateStock(warehouseId, sku, quantity, echo?.socketId());
      dispatch({ type: 'saved', item: result.item });
      return result;
    },
    [echo, warehouseId],
  );

  return { ...state, updateStock };
}
