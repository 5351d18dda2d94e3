// Offline checks of deploy/k8s: each manifest parses, matches the
// Kubernetes schema (kubernetes-models) and refers only to objects, labels,
// ports and keys that exist, and kustomize can render the whole set.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import test from 'node:test';

import {
  containerEnvironmentValue,
  containersOf,
  describe,
  expectedApiVersions,
  findContainerPort,
  findObject,
  k8sDir,
  loadKustomization,
  loadObjects,
  manifestFiles,
  parseDocuments,
  podLabels,
  selectorMatches,
  workloads,
  workloadsSelectedBy,
} from './lib/manifests.mjs';
import { commandExists, parseDockerfile, repoRoot, run } from './lib/repo.mjs';

const objects = loadObjects();
const heraldComponents = new Set(['gateway', 'relay']);

function heraldWorkloads() {
  return workloads(objects).filter((workload) =>
    heraldComponents.has(podLabels(workload)['app.kubernetes.io/component']),
  );
}

function workloadOfComponent(component) {
  const found = heraldWorkloads().find(
    (workload) => podLabels(workload)['app.kubernetes.io/component'] === component,
  );
  assert.ok(found, `no Deployment with pod label app.kubernetes.io/component=${component}`);
  return found;
}

// Gateway drain: HERALD_DRAIN_SECONDS, plus up to 3 s for closing
// handshakes (DRAIN_GRACE_MS in gateway/main.c), plus closing Redis.
const gatewayStopMarginSeconds = 5;

test('kustomization lists every manifest', () => {
  const kustomization = loadKustomization();
  assert.equal(kustomization.apiVersion, 'kustomize.config.k8s.io/v1beta1');
  assert.equal(kustomization.kind, 'Kustomization');

  const listed = [...(kustomization.resources ?? [])].sort();
  for (const file of listed) {
    assert.ok(fs.existsSync(path.join(k8sDir, file)), `kustomization.yaml lists ${file}, which does not exist`);
  }
  assert.deepEqual(listed, manifestFiles(), 'kustomization.yaml resources differ from the *.yaml files in deploy/k8s');
});

test('every object has apiVersion, kind and name', () => {
  assert.ok(objects.length > 0, 'no objects found in deploy/k8s');
  for (const entry of objects) {
    const { object } = entry;
    assert.equal(typeof object.kind, 'string', `${describe(entry)}: kind is missing`);
    assert.ok(object.kind in expectedApiVersions, `${describe(entry)}: kind ${object.kind} is not one the checks know`);
    assert.equal(object.apiVersion, expectedApiVersions[object.kind], `${describe(entry)}: wrong apiVersion`);
    assert.match(object.metadata?.name ?? '', /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${describe(entry)}: metadata.name is not a DNS label`);
  }
});

test('object names are unique per kind', () => {
  const seen = new Set();
  for (const entry of objects) {
    const key = `${entry.object.kind}/${entry.object.metadata.name}`;
    assert.ok(!seen.has(key), `${describe(entry)}: defined twice`);
    seen.add(key);
  }
});

test('every object matches the Kubernetes schema', async () => {
  for (const entry of objects) {
    const { apiVersion, kind } = entry.object;
    // kubernetes-models has one module per kind, under the API version
    // ("v1" for the core group).
    const module = await import(`kubernetes-models/${apiVersion}/${kind}`);
    const Model = module[kind];
    assert.ok(Model, `${describe(entry)}: kubernetes-models has no ${apiVersion} ${kind}`);
    assert.doesNotThrow(() => new Model(entry.object).validate(), `${describe(entry)}: does not match the ${apiVersion} ${kind} schema`);
  }
});

test('workload selectors match pod labels', () => {
  assert.ok(workloads(objects).length >= 3, 'expected the gateway, relay and Redis workloads');
  for (const workload of workloads(objects)) {
    const selector = workload.object.spec?.selector?.matchLabels;
    assert.ok(selector, `${describe(workload)}: spec.selector.matchLabels is missing`);
    assert.ok(selectorMatches(selector, podLabels(workload)), `${describe(workload)}: selector does not match the pod template labels`);
  }
});

test('workload selectors do not overlap', () => {
  for (const workload of workloads(objects)) {
    const selector = workload.object.spec.selector.matchLabels;
    const selected = workloadsSelectedBy(objects, selector);
    assert.deepEqual(selected.map(describe), [describe(workload)], `${describe(workload)}: its selector also matches other workloads' pods`);
  }
});

test('services select pods and container ports', () => {
  for (const service of objects.filter(({ object }) => object.kind === 'Service')) {
    const selected = workloadsSelectedBy(objects, service.object.spec?.selector);
    assert.ok(selected.length > 0, `${describe(service)}: selector matches no workload's pods`);
    for (const servicePort of service.object.spec.ports ?? []) {
      const target = servicePort.targetPort ?? servicePort.port;
      for (const workload of selected) {
        const found = containersOf(workload).some((container) => findContainerPort(container, target));
        assert.ok(found, `${describe(service)}: targetPort ${target} is not a container port of ${describe(workload)}`);
      }
    }
  }
});

test('statefulset names a headless service', () => {
  for (const statefulSet of objects.filter(({ object }) => object.kind === 'StatefulSet')) {
    const service = findObject(objects, 'Service', statefulSet.object.spec.serviceName);
    assert.ok(service, `${describe(statefulSet)}: serviceName ${statefulSet.object.spec.serviceName} is not a Service`);
    assert.equal(service.object.spec.clusterIP, 'None', `${describe(service)}: governing Service must be headless`);
  }
});

test('probes use /ready, /up and container ports', () => {
  for (const workload of heraldWorkloads()) {
    for (const container of containersOf(workload)) {
      const where = `${describe(workload)} container ${container.name}`;
      const readiness = container.readinessProbe?.httpGet;
      const liveness = container.livenessProbe?.httpGet;
      assert.ok(readiness, `${where}: readinessProbe.httpGet is missing`);
      assert.ok(liveness, `${where}: livenessProbe.httpGet is missing`);
      assert.equal(readiness.path, '/ready', `${where}: readinessProbe path`);
      assert.equal(liveness.path, '/up', `${where}: livenessProbe path`);
      assert.ok(findContainerPort(container, readiness.port), `${where}: readinessProbe port ${readiness.port} is not a container port`);
      assert.ok(findContainerPort(container, liveness.port), `${where}: livenessProbe port ${liveness.port} is not a container port`);
    }
  }
});

test('containers choose binary and listen port', () => {
  const portVariables = { gateway: 'HERALD_GATEWAY_PORT', relay: 'HERALD_RELAY_PORT' };
  const hostVariables = { gateway: 'HERALD_GATEWAY_HOST', relay: 'HERALD_RELAY_HOST' };
  for (const component of heraldComponents) {
    const workload = workloadOfComponent(component);
    const [container] = containersOf(workload);
    const where = `${describe(workload)} container ${container.name}`;
    assert.deepEqual(container.args, [component], `${where}: the entrypoint's first argument chooses the binary`);
    assert.equal(containerEnvironmentValue(objects, container, hostVariables[component]), '0.0.0.0', `${where}: ${hostVariables[component]}`);
    const port = Number(containerEnvironmentValue(objects, container, portVariables[component]));
    assert.equal(container.ports?.[0]?.containerPort, port, `${where}: containerPort differs from ${portVariables[component]}`);
  }
});

test('secret and config references exist', () => {
  for (const workload of workloads(objects)) {
    for (const container of containersOf(workload)) {
      const where = `${describe(workload)} container ${container.name}`;
      for (const source of container.envFrom ?? []) {
        if (source.configMapRef) {
          assert.ok(findObject(objects, 'ConfigMap', source.configMapRef.name), `${where}: ConfigMap ${source.configMapRef.name} not found`);
        }
        if (source.secretRef) {
          assert.ok(findObject(objects, 'Secret', source.secretRef.name), `${where}: Secret ${source.secretRef.name} not found`);
        }
      }
      for (const variable of container.env ?? []) {
        const reference = variable.valueFrom?.secretKeyRef;
        if (!reference || reference.optional) {
          continue;
        }
        const secret = findObject(objects, 'Secret', reference.name);
        assert.ok(secret, `${where}: ${variable.name} refers to Secret ${reference.name}, which is not defined`);
        const keys = { ...secret.object.data, ...secret.object.stringData };
        assert.ok(reference.key in keys, `${where}: Secret ${reference.name} has no key ${reference.key}`);
      }
    }
  }
});

test('secret provides apps and redis url', () => {
  for (const component of heraldComponents) {
    const [container] = containersOf(workloadOfComponent(component));
    const names = (container.env ?? []).filter((variable) => variable.valueFrom?.secretKeyRef).map((variable) => variable.name);
    assert.ok(names.includes('HERALD_APPS'), `${component}: HERALD_APPS does not come from a Secret`);
    assert.ok(names.includes('HERALD_REDIS_URL'), `${component}: HERALD_REDIS_URL does not come from a Secret`);
  }
  const secret = findObject(objects, 'Secret', 'herald');
  const apps = JSON.parse(secret.object.stringData.HERALD_APPS);
  assert.ok(Array.isArray(apps), 'HERALD_APPS in secret.yaml must be a JSON array');
  assert.ok(apps.length > 0, 'HERALD_APPS in secret.yaml must not be empty');
  assert.match(secret.object.stringData.HERALD_REDIS_URL, /^redis:\/\//, 'HERALD_REDIS_URL must be a redis:// URL');
});

test('gateway grace period exceeds drain', () => {
  const gateway = workloadOfComponent('gateway');
  const [container] = containersOf(gateway);
  const drainSeconds = Number(containerEnvironmentValue(objects, container, 'HERALD_DRAIN_SECONDS') ?? 10);
  const grace = gateway.object.spec.template.spec.terminationGracePeriodSeconds ?? 30;
  assert.ok(
    grace >= drainSeconds + gatewayStopMarginSeconds,
    `terminationGracePeriodSeconds ${grace} must be at least HERALD_DRAIN_SECONDS ${drainSeconds} + ${gatewayStopMarginSeconds}`,
  );
});

test('pods run as the image user', () => {
  const user = parseDockerfile(path.join(repoRoot, 'deploy', 'Dockerfile')).filter(({ instruction }) => instruction === 'USER').at(-1);
  assert.ok(user, 'deploy/Dockerfile has no USER instruction');
  const [uid] = user.argument.split(':').map(Number);
  for (const workload of heraldWorkloads()) {
    const security = workload.object.spec.template.spec.securityContext ?? {};
    assert.equal(security.runAsNonRoot, true, `${describe(workload)}: runAsNonRoot`);
    assert.equal(security.runAsUser, uid, `${describe(workload)}: runAsUser differs from the Dockerfile's USER`);
    for (const container of containersOf(workload)) {
      assert.equal(container.securityContext?.allowPrivilegeEscalation, false, `${describe(workload)} container ${container.name}: allowPrivilegeEscalation`);
    }
  }
});

test('disruption budgets select one workload', () => {
  const budgets = objects.filter(({ object }) => object.kind === 'PodDisruptionBudget');
  assert.ok(budgets.some((budget) => findObject(objects, 'PodDisruptionBudget', 'herald-gateway') === budget), 'no PodDisruptionBudget herald-gateway');
  for (const budget of budgets) {
    const selected = workloadsSelectedBy(objects, budget.object.spec.selector?.matchLabels);
    assert.equal(selected.length, 1, `${describe(budget)}: selector must match exactly one workload`);
  }
});

test('autoscaler targets gateway with cpu requests', () => {
  const autoscaler = findObject(objects, 'HorizontalPodAutoscaler', 'herald-gateway');
  assert.ok(autoscaler, 'no HorizontalPodAutoscaler herald-gateway');
  const target = autoscaler.object.spec.scaleTargetRef;
  const deployment = findObject(objects, target.kind, target.name);
  assert.ok(deployment, `${describe(autoscaler)}: target ${target.kind} ${target.name} not found`);
  assert.equal(target.apiVersion, deployment.object.apiVersion, `${describe(autoscaler)}: target apiVersion`);
  assert.equal(deployment.object.spec.replicas, undefined, `${describe(deployment)}: drop spec.replicas, which kubectl apply would reset under the autoscaler`);

  const cpu = autoscaler.object.spec.metrics.find((metric) => metric.resource?.name === 'cpu');
  assert.ok(cpu, `${describe(autoscaler)}: no CPU metric`);
  for (const container of containersOf(deployment)) {
    // Utilization is measured against the request, so it must be set.
    assert.ok(container.resources?.requests?.cpu, `${describe(deployment)} container ${container.name}: resources.requests.cpu is required by the CPU autoscaler`);
  }
  assert.ok(autoscaler.object.spec.minReplicas >= 2, `${describe(autoscaler)}: minReplicas below 2 leaves no gateway during a restart`);
});

test('ingress routes /app and /apps', () => {
  const ingresses = objects.filter(({ object }) => object.kind === 'Ingress');
  assert.equal(ingresses.length, 1, 'expected one Ingress');
  const [ingress] = ingresses;
  const routes = new Map();
  for (const rule of ingress.object.spec.rules) {
    for (const route of rule.http.paths) {
      const backend = route.backend.service;
      const service = findObject(objects, 'Service', backend.name);
      assert.ok(service, `${describe(ingress)}: path ${route.path} goes to Service ${backend.name}, which is not defined`);
      const port = backend.port.name ?? backend.port.number;
      const servicePort = service.object.spec.ports.find((candidate) => candidate.name === port || candidate.port === port);
      assert.ok(servicePort, `${describe(ingress)}: path ${route.path} goes to port ${port}, which Service ${backend.name} does not have`);
      assert.equal(route.pathType, 'Prefix', `${describe(ingress)}: path ${route.path} pathType`);
      routes.set(route.path, backend.name);
    }
  }
  assert.equal(routes.get('/app'), 'herald-gateway', 'path /app must go to the gateways');
  assert.equal(routes.get('/apps'), 'herald-relay', 'path /apps must go to the relays');
});

test('ingress keeps websockets open an hour', () => {
  const ingress = objects.find(({ object }) => object.kind === 'Ingress');
  const annotations = ingress.object.metadata.annotations ?? {};
  for (const name of ['proxy-read-timeout', 'proxy-send-timeout']) {
    const value = annotations[`nginx.ingress.kubernetes.io/${name}`];
    assert.equal(typeof value, 'string', `${describe(ingress)}: annotation ${name} is missing or not a string`);
    assert.ok(Number(value) >= 3600, `${describe(ingress)}: ${name} is ${value}, expected at least 3600`);
  }
  assert.equal(ingress.object.spec.ingressClassName, 'nginx', `${describe(ingress)}: ingressClassName`);
});

test('kustomize renders every object', (t) => {
  if (!commandExists('kubectl')) {
    t.skip('kubectl is not installed; the schema and reference checks above still ran');
    return;
  }
  const result = run('kubectl', ['kustomize', k8sDir]);
  assert.equal(result.status, 0, `kubectl kustomize failed:\n${result.output}`);
  const rendered = parseDocuments(result.stdout, 'kubectl kustomize output');

  const key = (object) => `${object.kind}/${object.metadata.name}`;
  assert.deepEqual(rendered.map(key).sort(), objects.map(({ object }) => key(object)).sort(), 'rendered objects differ from the manifests');
  for (const object of rendered) {
    if (object.kind === 'Namespace') {
      continue;
    }
    assert.equal(object.metadata.namespace, 'herald', `${key(object)}: namespace`);
  }
  const kustomization = loadKustomization();
  const [image] = kustomization.images;
  const expectedImage = `${image.newName}:${image.newTag}`;
  for (const object of rendered.filter((candidate) => candidate.kind === 'Deployment')) {
    for (const container of object.spec.template.spec.containers) {
      assert.equal(container.image, expectedImage, `${key(object)}: container ${container.name} image`);
    }
  }
});
