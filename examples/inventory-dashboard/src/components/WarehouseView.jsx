import { useWarehouse } from '../useWarehouse.js';
import ActivityFeed from './ActivityFeed.jsx';
import StockForm from './StockForm.jsx';
import StockTable from './StockTable.jsx';
import ViewerList from './ViewerList.jsx';

/** Renders one warehouse: its stock, the form to change it, who is viewing, and the live updates received. */
export default function WarehouseView({ warehouseId, user }) {
  const warehouse = useWarehouse(warehouseId);

  return (
    <div className="warehouse" data-testid="warehouse" data-status={warehouse.status} data-events-received={warehouse.eventsReceived}>
      {warehouse.error && <p role="alert" className="error">{warehouse.error}</p>}
      <section className="stock">
        <h2>Stock</h2>
        {warehouse.status === 'joining' && <p className="muted">Joining the warehouse channel…</p>}
        {warehouse.items.length > 0 && <StockTable items={warehouse.items} />}
        {warehouse.status === 'ready' && <StockForm items={warehouse.items} onSubmit={warehouse.updateStock} />}
      </section>
      <aside>
        <ViewerList viewers={warehouse.viewers} currentUserId={user.id} />
        <ActivityFeed activity={warehouse.activity} />
      </aside>
    </div>
  );
}
