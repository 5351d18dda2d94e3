/** InventoryUpdated events this page received from Herald, newest first. */
export default function ActivityFeed({ activity }) {
  return (
    <section className="activity">
      <h2>Live updates</h2>
      {activity.length === 0 && <p className="muted">Changes made by other viewers appear here.</p>}
      <ol aria-label="Live updates">
        {activity.map((entry) => (
          <li key={entry.key} data-sku={entry.sku}>
            <strong>{entry.updated_by?.name ?? 'Someone'}</strong> set {entry.sku} to {entry.quantity}
            <span className="muted"> · {new Date(entry.receivedAt).toLocaleTimeString()}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}
