// One Laravel Echo connection for the signed-in user, shared through React
// context.

import Echo from 'laravel-echo';
import Pusher from 'pusher-js';
import { createContext, useContext, useEffect, useState } from 'react';

const EchoContext = createContext(null);

/**
 * Connects Echo with `options` (the backend's broadcaster, key, wsHost and
 * wsPort) while mounted, and disconnects on unmount or when they change.
 */
export function EchoProvider({ options, children }) {
  const [echo, setEcho] = useState(null);
  const optionsKey = JSON.stringify(options);

  useEffect(() => {
    // Passing pusher-js as an option does what window.Pusher = Pusher does
    // in a Laravel app's resources/js/echo.js.
    const instance = new Echo({ ...JSON.parse(optionsKey), Pusher });
    setEcho(instance);
    return () => {
      instance.disconnect();
      setEcho(null);
    };
  }, [optionsKey]);

  return <EchoContext.Provider value={echo}>{children}</EchoContext.Provider>;
}

/** Returns the Echo instance of the nearest EchoProvider, or null before it is created. */
export function useEcho() {
  return useContext(EchoContext);
}

/** Connection state of pusher-js: initialized, connecting, connected, unavailable, failed or disconnected. */
export function useConnectionState() {
  const echo = useEcho();
  const [state, setState] = useState('initialized');

  useEffect(() => {
    if (!echo) {
      return undefined;
    }
    const connection = echo.connector.pusher.connection;
    setState(connection.state);
    const onChange = ({ current }) => setState(current);
    connection.bind('state_change', onChange);
    return () => connection.unbind('state_change', onChange);
  }, [echo]);

  return state;
}
