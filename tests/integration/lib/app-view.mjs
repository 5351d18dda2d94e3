// A view of a running cluster for another of its configured apps, so the
// client helpers (PusherJsClient, PresenceClient, cluster.sdk(), key
// helpers such as cluster.channelKey) work for an app other than
// cluster.app without changing the cluster itself.

/**
 * Returns an object that behaves like `cluster` with `app` ({ id, key,
 * secret }, one of the apps in HERALD_APPS) as its app. Methods that start
 * or stop processes use the cluster's private fields, so call them on
 * `cluster` itself.
 */
export function clusterForApp(cluster, app) {
  return Object.create(cluster, { app: { value: Object.freeze({ ...app }), enumerable: true } });
}
