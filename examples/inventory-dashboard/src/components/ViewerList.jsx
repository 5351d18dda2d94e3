/** Members of the warehouse's presence channel, from Echo's here, joining and leaving. */
export default function ViewerList({ viewers, currentUserId }) {
  return (
    <section className="viewers">
      <h2>Viewing now ({viewers.length})</h2>
      <ul aria-label="Viewers">
        {viewers.map((viewer) => (
          <li key={viewer.id} data-user-id={viewer.id}>
            {viewer.name}
            {viewer.id === currentUserId && <span className="muted"> (you)</span>}
          </li>
        ))}
      </ul>
    </section>
  );
}
