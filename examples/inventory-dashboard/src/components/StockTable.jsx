export default function StockTable({ items }) {
  return (
    <table aria-label="Stock levels">
      <thead>
        <tr>
          <th scope="col">SKU</th>
          <th scope="col">Item</th>
          <th scope="col" className="number">Quantity</th>
          <th scope="col">Last changed by</th>
        </tr>
      </thead>
      <tbody>
        {items.map((item) => (
          <tr key={item.sku} data-sku={item.sku} data-version={item.version}>
            <td className="sku">{item.sku}</td>
            <td>{item.name ?? ''}</td>
            <td className="number">
              {/* A new key per version restarts the highlight animation. */}
              <span key={item.version} className={item.version > 1 ? 'quantity changed' : 'quantity'} data-testid="quantity">
                {item.quantity}
              </span>
            </td>
            <td className="muted" data-testid="updated-by">
              {item.updated_by?.name ?? '—'}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
