import { useState } from 'react';

/** Form that sets the stock level of one item through onSubmit(sku, quantity). */
export default function StockForm({ items, onSubmit }) {
  const [sku, setSku] = useState(items[0]?.sku ?? '');
  const [quantity, setQuantity] = useState('');
  const [busy, setBusy] = useState(false);
  const [message, setMessage] = useState(null);

  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setMessage(null);
    try {
      const { item, broadcast } = await onSubmit(sku, Number(quantity));
      setMessage(
        broadcast === 'sent'
          ? { kind: 'ok', text: `Saved: ${item.sku} is now ${item.quantity}.` }
          : { kind: 'error', text: `Saved ${item.sku}, but Herald did not accept the InventoryUpdated event, so other viewers were not told.` },
      );
      setQuantity('');
    } catch (failure) {
      const detail = failure.errors?.quantity?.[0] ?? failure.message;
      setMessage({ kind: 'error', text: `Not saved: ${detail}` });
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="stock-form" onSubmit={submit} aria-label="Change a stock level">
      <label>
        Item
        <select value={sku} onChange={(event) => setSku(event.target.value)}>
          {items.map((item) => (
            <option key={item.sku} value={item.sku}>
              {item.sku} {item.name ? `· ${item.name}` : ''}
            </option>
          ))}
        </select>
      </label>
      <label>
        New quantity
        <input type="number" min="0" step="1" required value={quantity} onChange={(event) => setQuantity(event.target.value)} />
      </label>
      <button type="submit" disabled={busy || sku === ''}>
        Update stock
      </button>
      {message && (
        <p role="status" className={message.kind === 'ok' ? 'ok' : 'error'}>
          {message.text}
        </p>
      )}
    </form>
  );
}
