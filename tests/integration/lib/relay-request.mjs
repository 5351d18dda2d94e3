// Signed Pusher HTTP API requests with arbitrary bodies, for testing how the
// relay rejects bad input. Signing is done by the `pusher` Node SDK
// (createSignedQueryString, Token), so the tests never share the server's
// signature code.

import Pusher from 'pusher';
import pusherUtil from 'pusher/lib/util.js';

/**
 * POSTs `bodyText` to /apps/<appId><apiPath> on the relay, signed by `sdk`
 * (default: the cluster's app), and returns { status, body }.
 */
export async function signedPost(cluster, apiPath, bodyText, { sdk = cluster.sdk(), appId = cluster.app.id } = {}) {
  const path = `/apps/${appId}${apiPath}`;
  const query = sdk.createSignedQueryString({ method: 'POST', path, body: bodyText });
  return send(cluster, path, query, bodyText);
}

/**
 * POSTs `bodyText` signed with an explicit auth_timestamp (Unix seconds), to
 * test the relay's clock-skew window.
 */
export async function signedPostAt(cluster, apiPath, bodyText, timestamp) {
  const path = `/apps/${cluster.app.id}${apiPath}`;
  const params = {
    auth_key: cluster.app.key,
    auth_timestamp: String(timestamp),
    auth_version: '1.0',
    body_md5: pusherUtil.getMD5(bodyText),
  };
  const query = pusherUtil.toOrderedArray(params).join('&');
  const signature = new Pusher.Token(cluster.app.key, cluster.app.secret).sign(['POST', path, query].join('\n'));
  return send(cluster, path, `${query}&auth_signature=${signature}`, bodyText);
}

const REQUEST_TIMEOUT_MS = 10000;

/** POSTs `bodyText` with a query string given as is (no signing). */
export async function rawPost(cluster, pathAndQuery, bodyText) {
  const response = await fetch(`${cluster.relayUrl()}${pathAndQuery}`, {
    method: 'POST',
    body: bodyText,
    headers: { 'content-type': 'application/json' },
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  return { status: response.status, body: await response.text() };
}

async function send(cluster, path, query, bodyText) {
  return rawPost(cluster, `${path}?${query}`, bodyText);
}
