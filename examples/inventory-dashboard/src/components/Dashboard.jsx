import { useEffect, useState } from 'react';

import { api } from '../api.js';
import { useConnectionState } from '../echo.jsx';
import WarehouseView from './WarehouseView.jsx';

function warehouseFromUrl() {
  const value = new URLSearchParams(window.location.search).get('warehouse');
  return value && /^\d+$/.test(value) ? Number(value) : null;
}

/** Header with the user and connection state, the warehouse picker, and the open warehouse. */
export default function Dashboard({ user, onSignOut }) {
  const connection = useConnectionState();
  const [warehouses, setWarehouses] = useState([]);
  const [warehouseId, setWarehouseId] = useState(warehouseFromUrl);
  const [error, setError] = useState(null);

  useEffect(() => {
    api.warehouses().then(
      ({ warehouses: list }) => {
        setWarehouses(list);
        setWarehouseId((current) => (list.some((warehouse) => warehouse.id === current) ? current : (list[0]?.id ?? null)));
      },
      (failure) => setError(`Could not load your warehouses: ${failure.message}`),
    );
  }, []);

  // Keeps the open warehouse in the address, so a reload opens it again.
  useEffect(() => {
    if (warehouseId !== null) {
      const url = new URL(window.location.href);
      url.searchParams.set('warehouse', String(warehouseId));
      window.history.replaceState(null, '', url);
    }
  }, [warehouseId]);

  return (
    <div className="dashboard">
      <header>
        <h1>Inventory dashboard</h1>
        <span className={`connection connection-${connection}`} data-testid="connection-state">
          {connection}
        </span>
        <span className="user" data-testid="signed-in-user">
          Signed in as <strong>{user.name}</strong>
        </span>
        <button type="button" onClick={onSignOut}>
          Sign out
        </button>
      </header>

      {error && <p role="alert" className="error">{error}</p>}

      {warehouses.length > 0 && (
        <label className="warehouse-picker">
          Warehouse
          <select value={warehouseId ?? ''} onChange={(event) => setWarehouseId(Number(event.target.value))}>
            {warehouses.map((warehouse) => (
              <option key={warehouse.id} value={warehouse.id}>
                {warehouse.name}
              </option>
            ))}
          </select>
        </label>
      )}

      {warehouseId !== null && <WarehouseView key={warehouseId} warehouseId={warehouseId} user={user} />}
    </div>
  );
}
