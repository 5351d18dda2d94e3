import { useEffect, useState } from 'react';

import { api, setCsrfToken } from './api.js';
import Dashboard from './components/Dashboard.jsx';
import SignIn from './components/SignIn.jsx';
import { EchoProvider } from './echo.jsx';

export default function App() {
  const [session, setSession] = useState(null);
  const [error, setError] = useState(null);

  // The session response also carries the CSRF token, which the dev server
  // (npm run dev) cannot put into index.html.
  function applySession(payload) {
    setCsrfToken(payload.csrf_token);
    setSession(payload);
  }

  useEffect(() => {
    api.session().then(applySession, (failure) => setError(`Could not reach the backend: ${failure.message}`));
  }, []);

  async function signOut() {
    applySession(await api.signOut());
  }

  if (error) {
    return <p role="alert" className="error">{error}</p>;
  }
  if (!session) {
    return <p className="muted">Loading…</p>;
  }
  if (!session.user) {
    return <SignIn onSignedIn={applySession} />;
  }
  return (
    <EchoProvider options={session.echo}>
      <Dashboard user={session.user} onSignOut={signOut} />
    </EchoProvider>
  );
}
