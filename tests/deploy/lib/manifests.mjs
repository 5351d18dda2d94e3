// Loads the Kubernetes manifests of deploy/k8s and provides the lookups the
// checks need (objects by kind and name, pod templates, containers).
import fs from 'node:fs';
import path from 'node:path';
import YAML from 'yaml';

import { repoRoot } from './repo.mjs';

export const k8sDir = path.join(repoRoot, 'deploy', 'k8s');

// The API version each kind must use: the current GA version, so a
// manifest never depends on a version that a cluster upgrade removes.
export const expectedApiVersions = {
  Namespace: 'v1',
  ConfigMap: 'v1',
  Secret: 'v1',
  Service: 'v1',
  Deployment: 'apps/v1',
  StatefulSet: 'apps/v1',
  PodDisruptionBudget: 'policy/v1',
  HorizontalPodAutoscaler: 'autoscaling/v2',
  Ingress: 'networking.k8s.io/v1',
};

export const workloadKinds = new Set(['Deployment', 'StatefulSet']);

// Parses every YAML document of `text`, throwing on the first syntax
// error with the file name in the message.
export function parseDocuments(text, fileName) {
  const documents = YAML.parseAllDocuments(text, { prettyErrors: true });
  const objects = [];
  for (const document of documents) {
    if (document.errors.length > 0) {
      throw new Error(`${fileName}: invalid YAML: ${document.errors[0].message}`);
    }
    const value = document.toJS();
    if (value !== null && value !== undefined) {
      objects.push(value);
    }
  }
  return objects;
}

export function loadKustomization() {
  const file = path.join(k8sDir, 'kustomization.yaml');
  const [kustomization] = parseDocuments(fs.readFileSync(file, 'utf8'), file);
  return kustomization;
}

// Every manifest file of deploy/k8s except kustomization.yaml.
export function manifestFiles() {
  return fs
    .readdirSync(k8sDir)
    .filter((name) => /\.ya?ml$/.test(name) && name !== 'kustomization.yaml')
    .sort();
}

// Objects of all manifest files, each with the file it came from.
export function loadObjects() {
  const objects = [];
  for (const file of manifestFiles()) {
    const text = fs.readFileSync(path.join(k8sDir, file), 'utf8');
    for (const object of parseDocuments(text, file)) {
      objects.push({ file, object });
    }
  }
  return objects;
}

export function describe({ file, object }) {
  return `${file}: ${object?.kind ?? '(no kind)'} ${object?.metadata?.name ?? '(no name)'}`;
}

export function findObject(objects, kind, name) {
  return objects.find(({ object }) => object.kind === kind && object.metadata?.name === name);
}

export function workloads(objects) {
  return objects.filter(({ object }) => workloadKinds.has(object.kind));
}

export function podLabels(workload) {
  return workload.object.spec?.template?.metadata?.labels ?? {};
}

export function containersOf(workload) {
  return workload.object.spec?.template?.spec?.containers ?? [];
}

// True when every key and value of `selector` (a label map) is in `labels`.
export function selectorMatches(selector, labels) {
  const entries = Object.entries(selector ?? {});
  return entries.length > 0 && entries.every(([key, value]) => labels[key] === value);
}

// Workloads whose pods carry every label of `selector`.
export function workloadsSelectedBy(objects, selector) {
  return workloads(objects).filter((workload) => selectorMatches(selector, podLabels(workload)));
}

// The container port that `port` (a name or a number) refers to, if any.
export function findContainerPort(container, port) {
  return (container.ports ?? []).find((candidate) =>
    typeof port === 'number' ? candidate.containerPort === port : candidate.name === port,
  );
}

// Value of environment variable `name` for `container`: from env values or
// from a ConfigMap in envFrom. Returns undefined when it is not set there.
export function containerEnvironmentValue(objects, container, name) {
  const direct = (container.env ?? []).find((variable) => variable.name === name);
  if (direct && direct.value !== undefined) {
    return direct.value;
  }
  for (const source of container.envFrom ?? []) {
    const configMapName = source.configMapRef?.name;
    if (!configMapName) {
      continue;
    }
    const configMap = findObject(objects, 'ConfigMap', configMapName);
    const value = configMap?.object.data?.[name];
    if (value !== undefined) {
      return value;
    }
  }
  return undefined;
}
