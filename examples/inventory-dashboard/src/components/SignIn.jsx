import { useEffect, useState } from 'react';

import { api } from '../api.js';

/** Sign-in form: pick one of the backend's demo users. */
export default function SignIn({ onSignedIn }) {
  const [users, setUsers] = useState([]);
  const [userId, setUserId] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api.users().then(
      ({ users: list }) => {
        setUsers(list);
        setUserId((current) => current || String(list[0]?.id ?? ''));
      },
      (failure) => setError(`Could not load the demo users: ${failure.message}`),
    );
  }, []);

  async function submit(event) {
    event.preventDefault();
    setBusy(true);
    setError(null);
    try {
      onSignedIn(await api.signIn(Number(userId)));
    } catch (failure) {
      setError(`Sign-in failed: ${failure.message}`);
      setBusy(false);
    }
  }

  return (
    <main className="sign-in">
      <h1>Inventory dashboard</h1>
      <p className="muted">A Laravel-style app on Herald. Sign in as one of the demo users.</p>
      <form onSubmit={submit}>
        <label>
          Demo user
          <select value={userId} onChange={(event) => setUserId(event.target.value)} disabled={users.length === 0}>
            {users.map((user) => (
              <option key={user.id} value={user.id}>
                {user.name}
              </option>
            ))}
          </select>
        </label>
        <button type="submit" disabled={busy || userId === ''}>
          Sign in
        </button>
      </form>
      {error && <p role="alert" className="error">{error}</p>}
    </main>
  );
}
