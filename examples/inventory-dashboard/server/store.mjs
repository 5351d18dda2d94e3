// In-memory stand-in for the Laravel app's database: demo users, the
// warehouses each one may open, and the stock of each warehouse. Data is
// reset whenever the server starts.

export const MAX_QUANTITY = 1_000_000;

const USERS = [
  { id: 1, name: 'Ava Morgan', warehouseIds: [1, 2] },
  { id: 2, name: 'Ben Ortiz', warehouseIds: [1, 2] },
  { id: 3, name: 'Chen Li', warehouseIds: [2] },
];

const WAREHOUSES = [
  { id: 1, name: 'Rotterdam' },
  { id: 2, name: 'Leeds' },
];

const INITIAL_STOCK = {
  1: [
    { sku: 'PAL-EUR-1200', name: 'Euro pallet 1200 × 800', quantity: 340 },
    { sku: 'BOX-S-30', name: 'Carton, small (30 cm)', quantity: 1250 },
    { sku: 'BOX-L-60', name: 'Carton, large (60 cm)', quantity: 410 },
    { sku: 'TAPE-48', name: 'Packing tape 48 mm', quantity: 96 },
  ],
  2: [
    { sku: 'PAL-EUR-1200', name: 'Euro pallet 1200 × 800', quantity: 120 },
    { sku: 'WRAP-500', name: 'Stretch wrap 500 mm', quantity: 64 },
    { sku: 'LBL-A6', name: 'Shipping labels A6 (roll)', quantity: 18 },
  ],
};

function publicUser(user) {
  return { id: user.id, name: user.name };
}

export class Store {
  constructor() {
    // warehouse id -> Map(sku -> item)
    this.stock = new Map();
    for (const warehouse of WAREHOUSES) {
      const items = new Map();
      for (const item of INITIAL_STOCK[warehouse.id]) {
        items.set(item.sku, { ...item, version: 1, updated_by: null, updated_at: null });
      }
      this.stock.set(warehouse.id, items);
    }
  }

  /** Demo users as {id, name}, for the sign-in list. */
  listUsers() {
    return USERS.map(publicUser);
  }

  findUser(id) {
    return USERS.find((user) => user.id === id) ?? null;
  }

  findWarehouse(id) {
    return WAREHOUSES.find((warehouse) => warehouse.id === id) ?? null;
  }

  canAccessWarehouse(user, warehouseId) {
    return user.warehouseIds.includes(warehouseId);
  }

  /** Warehouses that `user` may open. */
  warehousesFor(user) {
    return WAREHOUSES.filter((warehouse) => this.canAccessWarehouse(user, warehouse.id));
  }

  /** Items of warehouse `warehouseId` in SKU order, or null for an unknown warehouse. */
  listItems(warehouseId) {
    const items = this.stock.get(warehouseId);
    if (!items) {
      return null;
    }
    return [...items.values()].map((item) => ({ ...item })).sort((a, b) => a.sku.localeCompare(b.sku));
  }

  /**
   * Sets the quantity of `sku` in warehouse `warehouseId` and returns the
   * updated item, or null when the warehouse or SKU does not exist. Each
   * change raises the item's version by one, so clients can drop an event
   * older than what they already show.
   */
  setQuantity(warehouseId, sku, quantity, user) {
    const item = this.stock.get(warehouseId)?.get(sku);
    if (!item) {
      return null;
    }
    item.quantity = quantity;
    item.version += 1;
    item.updated_by = publicUser(user);
    item.updated_at = new Date().toISOString();
    return { ...item };
  }
}

export { publicUser };
