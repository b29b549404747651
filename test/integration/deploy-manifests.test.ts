/**
 * The deploy files, checked without a Docker engine or a cluster (issue 15).
 *
 * - deploy/compose.yaml against the Compose specification's JSON schema
 *   (test/fixtures/compose-spec.json) with ajv, and what a schema cannot see:
 *   every worker has a service, mounts and dependencies exist, Prometheus
 *   scrapes every node and worker, Grafana is provisioned with the dashboard.
 * - deploy/k8s: each overlay rendered by kustomize (the one built into
 *   kubectl), every manifest validated against the Kubernetes API schemas
 *   (kubernetes-models: ajv validators generated from the API's OpenAPI
 *   spec), unknown fields refused (a TypeScript check against the same
 *   package's types: the API schemas allow any extra field, kubectl does
 *   not), and the relations no schema checks: selectors, ports, probes, the
 *   drain timing, every setting in the ConfigMap or the Secret.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import ts from 'typescript';
import { parse, parseAllDocuments } from 'yaml';
import { parseServeCommand, SETTINGS } from '../../src/cli/settings.js';
import { normalizeOptions } from '../../src/config/normalize.js';
import { parseWorkerCommand, WORKER_SETTINGS } from '../../src/workers/cli.js';
import { checkWorkerOptions } from '../../src/workers/runner.js';
import { WORKER_NAMES } from '../../src/workers/worker.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const DEPLOY = join(ROOT, 'deploy');
const K8S = join(DEPLOY, 'k8s');
const run = promisify(execFile);

type Json = Record<string, unknown>;
const obj = (value: unknown, what: string): Json => {
  assert.ok(value !== null && typeof value === 'object' && !Array.isArray(value), `${what}: expected an object`);
  return value as Json;
};
const arr = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
const str = (value: unknown): string => (typeof value === 'string' ? value : String(value));

/** Milliseconds of a Compose duration ("20s", "1m30s", "500ms"). */
function durationMs(text: string): number {
  let ms = 0;
  for (const [, amount, unit] of text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g))
    ms += Number(amount) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit as 'ms' | 's' | 'm' | 'h'];
  return ms;
}

describe('deploy/compose.yaml', () => {
  const compose = obj(parse(readFileSync(join(DEPLOY, 'compose.yaml'), 'utf8'), { merge: true }), 'compose.yaml');
  const services = obj(compose.services, 'services');
  const service = (name: string): Json => obj(services[name], `service ${name}`);
  const env = (name: string): Record<string, string> => obj(service(name).environment ?? {}, `${name}.environment`) as Record<string, string>;

  it('is valid against the Compose specification schema', () => {
    const { $schema: draft, ...schema } = JSON.parse(readFileSync(join(ROOT, 'test', 'fixtures', 'compose-spec.json'), 'utf8')) as Json;
    // Draft-07, ajv's default; ajv knows its meta-schema by the http:// id, not the https:// one the file names.
    assert.match(str(draft), /draft-07/);
    const ajv = new Ajv({ strict: false, allErrors: true });
    const validate = ajv.compile(schema);
    assert.ok(validate(compose), JSON.stringify(validate.errors, null, 2));
    // The schema sees the data, not the merge keys: a typo in the anchors would
    // still validate, so check the merged services have what the anchors give.
    for (const name of Object.keys(services)) assert.ok(service(name).image !== undefined || service(name).build !== undefined, `${name}: no image`);
  });

  it('runs every worker, and services that depend on and mount what exists', () => {
    const commands = Object.values(services).map((s) => arr(obj(s, 'service').command).map(str).join(' '));
    for (const worker of WORKER_NAMES) assert.ok(commands.includes(`worker ${worker}`), `no service runs worker ${worker}`);
    for (const [name, raw] of Object.entries(services)) {
      const s = obj(raw, name);
      const dependsOn = Array.isArray(s.depends_on) ? s.depends_on.map(str) : Object.keys(obj(s.depends_on ?? {}, 'depends_on'));
      for (const target of dependsOn) assert.ok(services[target], `${name} depends on unknown service ${target}`);
      for (const volume of arr(s.volumes).map(str)) {
        const source = volume.split(':')[0]!;
        if (source.startsWith('.')) assert.ok(existsSync(join(DEPLOY, source)), `${name} mounts ${source}, which does not exist`);
        else assert.ok(obj(compose.volumes, 'volumes')[source] !== undefined, `${name} uses undeclared volume ${source}`);
      }
      if (s.build !== undefined) {
        const build = obj(s.build, `${name}.build`);
        assert.ok(existsSync(join(DEPLOY, str(build.context), str(build.dockerfile ?? 'Dockerfile'))), `${name}: Dockerfile not found`);
      }
    }
  });

  it('gives each node a stop grace period above its shutdown timeout', () => {
    const nodes = Object.keys(services).filter((name) => arr(service(name).command)[0] === 'serve');
    assert.ok(nodes.length >= 2, 'at least two nodes');
    for (const name of nodes) {
      const grace = durationMs(str(service(name).stop_grace_period ?? '10s'));
      assert.ok(grace > Number(env(name).NERVE_SHUTDOWN_TIMEOUT_MS ?? 10_000), `${name}: stop_grace_period ${grace} ms <= NERVE_SHUTDOWN_TIMEOUT_MS`);
    }
  });

  it("gives every node and worker a configuration nerve's own validation accepts", () => {
    // Compose interpolation with what the header asks the user to export.
    const exported: Record<string, string> = {
      NERVE_API_KEY: '0123456789abcdef0123456789abcdef',
      NERVE_CLEANUP_HOOK_URL: 'https://hooks.example.com/room-ended',
      NERVE_WEBHOOK_URLS: 'https://hooks.example.com/nerve',
      NERVE_WEBHOOK_SECRET: 'whsec_0123456789abcdef',
    };
    const interpolate = (value: string): string =>
      value.replace(/\$\{(\w+)(?::([?-])([^}]*))?\}/g, (_, name: string, op: string | undefined, rest: string) => exported[name] ?? (op === '-' ? rest : ''));
    for (const [name, raw] of Object.entries(services)) {
      const command = arr(obj(raw, name).command).map(str);
      if (command[0] !== 'serve' && command[0] !== 'worker') continue;
      const environment = Object.fromEntries(Object.entries(env(name)).map(([k, v]) => [k, interpolate(str(v))]));
      if (command[0] === 'serve') {
        const options = normalizeOptions(parseServeCommand(command.slice(1), environment).options);
        assert.ok(options.redisUrl && options.amqpUrl, `${name}: a node of the cluster uses Redis and RabbitMQ`);
      } else {
        const parsed = parseWorkerCommand(command.slice(1), environment);
        assert.doesNotThrow(() => checkWorkerOptions(parsed.name, parsed.options), name);
      }
    }
  });

  it('has Prometheus scrape every node and worker, and Grafana provisioned with the dashboard', () => {
    const prometheus = obj(parse(readFileSync(join(DEPLOY, 'prometheus.yml'), 'utf8')), 'prometheus.yml');
    const targets = new Set<string>();
    for (const job of arr(prometheus.scrape_configs).map((j) => obj(j, 'scrape_config'))) {
      for (const config of arr(job.static_configs)) for (const target of arr(obj(config, 'static_config').targets)) targets.add(str(target));
      for (const config of arr(job.dns_sd_configs)) {
        const dns = obj(config, 'dns_sd_config');
        for (const name of arr(dns.names)) targets.add(`${str(name)}:${str(dns.port)}`);
      }
    }
    for (const [name, raw] of Object.entries(services)) {
      const command = arr(obj(raw, name).command).map(str);
      if (command[0] === 'serve') assert.ok(targets.has(`${name}:${env(name).NERVE_PORT ?? '8080'}`), `Prometheus does not scrape node ${name}`);
      if (command[0] === 'worker') {
        assert.ok(env(name).NERVE_METRICS_PORT, `worker ${name} serves no metrics`);
        assert.ok(targets.has(`${name}:${env(name).NERVE_METRICS_PORT}`), `Prometheus does not scrape worker ${name}`);
      }
    }
    for (const target of targets) assert.ok(services[target.split(':')[0]!], `Prometheus target ${target} is no service`);
    assert.ok(
      arr(service('prometheus').volumes)
        .map(str)
        .some((v) => v.startsWith('./prometheus.yml:')),
      'prometheus.yml not mounted',
    );

    const grafana = service('grafana');
    const mounts = new Map(
      arr(grafana.volumes)
        .map(str)
        .map((v) => [v.split(':')[1]!, v.split(':')[0]!] as const),
    );
    assert.equal(mounts.get('/etc/grafana/provisioning'), './grafana/provisioning');
    const datasources = obj(parse(readFileSync(join(DEPLOY, 'grafana/provisioning/datasources/prometheus.yaml'), 'utf8')), 'datasources');
    const source = obj(arr(datasources.datasources)[0], 'datasource');
    assert.equal(source.type, 'prometheus');
    assert.ok(services[new URL(str(source.url)).hostname], `data source ${str(source.url)} is no service`);
    const providers = obj(parse(readFileSync(join(DEPLOY, 'grafana/provisioning/dashboards/nerve.yaml'), 'utf8')), 'dashboards');
    const path = str(obj(obj(arr(providers.providers)[0], 'provider').options, 'options').path);
    assert.equal(mounts.get(`${path}/nerve.json`), './grafana/nerve.json', 'the dashboard is not mounted where the provider reads');
    const dashboard = JSON.parse(readFileSync(join(DEPLOY, 'grafana/nerve.json'), 'utf8')) as Json;
    assert.ok(
      arr(obj(dashboard.templating, 'templating').list).some((v) => obj(v, 'variable').type === 'datasource' && obj(v, 'variable').query === 'prometheus'),
    );
  });
});

// ---------------------------------------------------------------- Kubernetes

interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: Json;
  data?: Record<string, string>;
}

/** Where the schema and the type of each kind live. */
function modelPath(m: Manifest): string {
  if (m.apiVersion === 'monitoring.coreos.com/v1') return `@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/${m.kind}`;
  return `kubernetes-models/${m.apiVersion}/${m.kind}`;
}

async function kustomize(dir: string): Promise<Manifest[]> {
  const { stdout } = await run('kubectl', ['kustomize', dir], { timeout: 20_000 });
  return parseAllDocuments(stdout).map((doc) => doc.toJSON() as Manifest);
}

/** Every kustomization a user may apply: the overlays, and production with every optional component. */
async function renderAll(): Promise<Map<string, Manifest[]>> {
  const rendered = new Map<string, Manifest[]>();
  for (const overlay of ['dev', 'production']) rendered.set(overlay, await kustomize(join(K8S, 'overlays', overlay)));
  const scratch = await mkdtemp(join(tmpdir(), 'nerve-kustomize-'));
  try {
    // kustomize takes no absolute paths to other kustomizations: relative ones from the scratch folder.
    const rel = (path: string): string => relative(scratch, join(K8S, path));
    await writeFile(
      join(scratch, 'kustomization.yaml'),
      `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [${rel('overlays/production')}]\ncomponents: [${rel('components/hook-workers')}, ${rel('components/hpa-connections')}]\n`,
    );
    rendered.set('production + every component', await kustomize(scratch));
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
  return rendered;
}

/** TypeScript's excess-property check on object literals: a field the API does not define is an error. */
function unknownFields(manifests: Manifest[]): string[] {
  // In memory only, named inside the repository so the imports resolve from its node_modules.
  const file = join(ROOT, 'test', 'fixtures', 'k8s-manifests.in-memory.ts');
  const lines = manifests.map((m, i) => `import type { I${m.kind} as T${i} } from '${modelPath(m)}';\nexport const m${i}: T${i} = ${JSON.stringify(m)};`);
  const source = lines.join('\n');
  const host = ts.createCompilerHost({});
  const original = host.getSourceFile.bind(host);
  host.getSourceFile = (name, version, onError, create) =>
    name === file ? ts.createSourceFile(name, source, version) : original(name, version, onError, create);
  const program = ts.createProgram(
    [file],
    {
      strict: true,
      noEmit: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      target: ts.ScriptTarget.ES2022,
      skipLibCheck: true,
      types: [],
    },
    host,
  );
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const where = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
    const index = where >= 0 ? Math.floor(where / 2) : -1;
    const m = manifests[index];
    return `${m ? `${m.kind}/${m.metadata.name}: ` : ''}${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
  });
}

const selects = (selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean =>
  selector !== undefined && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);

interface Pod {
  deployment: Manifest;
  labels: Record<string, string>;
  spec: Json;
  container: Json;
}

function pods(manifests: Manifest[]): Pod[] {
  return manifests
    .filter((m) => m.kind === 'Deployment')
    .map((deployment) => {
      const template = obj(deployment.spec?.template, 'template');
      const spec = obj(template.spec, 'pod spec');
      return {
        deployment,
        labels: obj(obj(template.metadata, 'metadata').labels, 'labels') as Record<string, string>,
        spec,
        container: obj(arr(spec.containers)[0], 'container'),
      };
    });
}

const nervePods = (manifests: Manifest[]): Pod[] => pods(manifests).filter((p) => ['serve', 'worker'].includes(str(arr(p.container.args)[0])));

describe('deploy/k8s (kustomize base and overlays)', async () => {
  const kubectl = await run('kubectl', ['version', '--client'], { timeout: 10_000 }).then(
    () => true,
    () => false,
  );
  const skip = kubectl ? false : 'kubectl (its built-in kustomize renders the overlays) is not installed';
  if (skip && process.env.CI === 'true') throw new Error(`${skip} (required in CI)`);
  const rendered = skip ? new Map<string, Manifest[]>() : await renderAll();

  it('renders every overlay, and every manifest is valid against the Kubernetes API schemas', { skip }, async () => {
    for (const [name, manifests] of rendered) {
      assert.ok(manifests.length > 5, `${name}: rendered ${manifests.length} manifests`);
      for (const m of manifests) {
        const module = (await import(modelPath(m))) as Record<string, new (data: unknown) => { validate(): void }>;
        const Model = module[m.kind];
        assert.ok(Model, `${name}: no schema for ${m.apiVersion} ${m.kind}`);
        assert.doesNotThrow(() => new Model(m).validate(), `${name}: ${m.kind}/${m.metadata.name} is invalid`);
      }
    }
  });

  it('has no field the Kubernetes API does not define (what kubectl --validate=strict refuses)', { skip, timeout: 30_000 }, () => {
    // The overlays differ mostly in namespace: check each distinct manifest once.
    const all = [...rendered.values()].flat().map((m) => ({ ...m, metadata: { ...m.metadata, namespace: undefined } }));
    const unique = [...new Map(all.map((m) => [JSON.stringify(m), m as Manifest])).values()];
    assert.deepEqual(unknownFields(unique), []);
  });

  it('runs every worker, and configures every setting of nerve serve and nerve worker', { skip }, () => {
    const full = rendered.get('production + every component')!;
    const workers = nervePods(full)
      .filter((p) => arr(p.container.args)[0] === 'worker')
      .map((p) => str(arr(p.container.args)[1]));
    assert.deepEqual(workers.sort(), [...WORKER_NAMES].sort());

    const known = new Set([...SETTINGS.map((s) => s.env), ...WORKER_SETTINGS.map((s) => s.env)]);
    const config = full.find((m) => m.kind === 'ConfigMap' && m.metadata.name === 'nerve-config');
    assert.ok(config?.data);
    const secretKeys = readFileSync(join(K8S, 'secrets.env.example'), 'utf8')
      .split('\n')
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => line.split('=')[0]!);
    const perPod = new Set(nervePods(full).flatMap((p) => arr(p.container.env).map((e) => str(obj(e, 'env').name))));
    const configured = new Set([...Object.keys(config.data), ...secretKeys, ...perPod]);
    // A key that sets a value must be a setting (a typo would be ignored by nerve); an empty one sets nothing.
    for (const [key, value] of Object.entries(config.data)) assert.ok(known.has(key) || value === '', `${key} is no setting of nerve serve or nerve worker`);
    for (const key of secretKeys) assert.ok(known.has(key), `${key} is no setting of nerve serve or nerve worker`);
    for (const key of Object.keys(config.data)) assert.ok(!secretKeys.includes(key), `${key} is both in the ConfigMap and the Secret`);
    const missing = [...known].filter((key) => !configured.has(key));
    assert.deepEqual(missing, [], 'settings missing from deploy/k8s/base/config.yaml or secrets.env.example (add them; empty = the default)');
    const devSecret = rendered.get('dev')!.find((m) => m.kind === 'Secret');
    assert.deepEqual(
      Object.keys(devSecret?.data ?? {}).sort(),
      [...secretKeys].sort(),
      'the dev overlay generates the Secret with the keys of secrets.env.example',
    );
  });

  it('gives every node and worker a configuration its own validation accepts (ConfigMap + Secret + pod env)', { skip }, () => {
    const exampleSecret = Object.fromEntries(
      readFileSync(join(K8S, 'secrets.env.example'), 'utf8')
        .split('\n')
        .filter((line) => /^[A-Z_]+=/.test(line))
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    ) as Record<string, string>;
    // What components/hook-workers asks the operator to fill in.
    const operatorValues: Record<string, string> = {
      NERVE_CLEANUP_HOOK_URL: 'https://hooks.example.com/room-ended',
      NERVE_WEBHOOK_URLS: 'https://hooks.example.com/nerve',
      NERVE_WEBHOOK_SECRET: 'whsec_0123456789abcdef',
    };
    for (const [name, manifests] of rendered) {
      const config = manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name === 'nerve-config')!.data!;
      const generated = manifests.find((m) => m.kind === 'Secret');
      const secret = generated
        ? Object.fromEntries(Object.entries(generated.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString('utf8')]))
        : exampleSecret;
      for (const pod of nervePods(manifests)) {
        const env: Record<string, string> = { ...config, ...secret };
        for (const [key, value] of Object.entries(operatorValues)) if (!env[key]) env[key] = value;
        for (const entry of arr(pod.container.env).map((e) => obj(e, 'env'))) {
          // fieldRef values as the kubelet fills them; $(VAR) as it expands them.
          const value = entry.valueFrom
            ? str(obj(obj(entry.valueFrom, 'valueFrom').fieldRef, 'fieldRef').fieldPath) === 'status.podIP'
              ? '10.1.2.3'
              : 'nerve-node-7d9f-abcde'
            : str(entry.value);
          env[str(entry.name)] = value.replace(/\$\((\w+)\)/g, (_, ref: string) => env[ref] ?? '');
        }
        const args = arr(pod.container.args).map(str);
        const what = `${name}: ${pod.deployment.metadata.name}`;
        if (args[0] === 'serve') {
          const options = normalizeOptions(parseServeCommand(args.slice(1), env).options);
          assert.equal(options.drainWindowMs, Number(config.NERVE_DRAIN_WINDOW_MS), what);
          assert.equal(options.port, 8080, what);
          assert.equal(options.advertiseUrl, 'http://10.1.2.3:8080', what);
        } else {
          const command = parseWorkerCommand(args.slice(1), env);
          assert.doesNotThrow(() => checkWorkerOptions(command.name, command.options), what);
          assert.equal(command.options.metricsPort, 9090, what);
        }
      }
    }
  });

  it('points every Deployment at its ConfigMap and Secret, and every Service, PDB, HPA and ServiceMonitor at real pods and ports', { skip }, () => {
    for (const [name, manifests] of rendered) {
      const names = (kind: string): string[] => manifests.filter((m) => m.kind === kind).map((m) => m.metadata.name);
      for (const pod of nervePods(manifests)) {
        const refs = arr(pod.container.envFrom).map((e) => obj(e, 'envFrom'));
        const configMap = refs
          .map((r) => r.configMapRef)
          .filter(Boolean)
          .map((r) => str(obj(r, 'ref').name));
        const secret = refs
          .map((r) => r.secretRef)
          .filter(Boolean)
          .map((r) => str(obj(r, 'ref').name));
        for (const ref of configMap)
          assert.ok(names('ConfigMap').includes(ref), `${name}: ${pod.deployment.metadata.name} reads ConfigMap ${ref}, not rendered`);
        // Production leaves the Secret to the operator (secrets.env.example); dev generates it.
        if (name === 'dev') for (const ref of secret) assert.ok(names('Secret').includes(ref), `${name}: Secret ${ref} not rendered`);
        else assert.deepEqual(secret, ['nerve-secrets']);
        const sc = obj(pod.spec.securityContext, 'securityContext');
        assert.equal(sc.runAsNonRoot, true, `${pod.deployment.metadata.name}: runAsNonRoot`);
        // The Service "nerve" would otherwise inject NERVE_PORT=tcp://… into the environment nerve reads.
        assert.equal(pod.spec.enableServiceLinks, false, `${pod.deployment.metadata.name}: enableServiceLinks`);
      }
      const allPods = pods(manifests);
      for (const service of manifests.filter((m) => m.kind === 'Service')) {
        const selector = obj(service.spec?.selector, 'selector') as Record<string, string>;
        const matched = allPods.filter((p) => selects(selector, p.labels));
        assert.ok(matched.length > 0, `${name}: Service ${service.metadata.name} selects no pod`);
        for (const port of arr(service.spec?.ports).map((p) => obj(p, 'port'))) {
          for (const pod of matched) {
            const ports = arr(pod.container.ports).map((p) => obj(p, 'containerPort'));
            assert.ok(
              ports.some((p) => p.name === port.targetPort || p.containerPort === (port.targetPort ?? port.port)),
              `${name}: Service ${service.metadata.name} port ${str(port.targetPort)} not on ${pod.deployment.metadata.name}`,
            );
          }
        }
      }
      // Every worker pod is behind the workers' Service (so it is scraped).
      const workersService = manifests.find((m) => m.kind === 'Service' && m.metadata.name === 'nerve-workers');
      for (const pod of nervePods(manifests).filter((p) => arr(p.container.args)[0] === 'worker')) {
        assert.ok(
          selects(workersService?.spec?.selector as Record<string, string>, pod.labels),
          `${name}: ${pod.deployment.metadata.name} is not behind Service nerve-workers`,
        );
      }
      const nodePod = allPods.find((p) => arr(p.container.args)[0] === 'serve');
      assert.ok(nodePod, `${name}: no node Deployment`);
      const pdb = manifests.find((m) => m.kind === 'PodDisruptionBudget');
      assert.ok(
        selects(obj(obj(pdb?.spec, 'pdb spec').selector, 'selector').matchLabels as Record<string, string>, nodePod.labels),
        `${name}: the PDB does not select the node pods`,
      );
      assert.ok(selects(obj(nodePod.deployment.spec?.selector, 'selector').matchLabels as Record<string, string>, nodePod.labels));
      const hpa = manifests.find((m) => m.kind === 'HorizontalPodAutoscaler');
      assert.deepEqual(hpa?.spec?.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: nodePod.deployment.metadata.name });
      assert.ok(
        nodePod.container.resources && obj(obj(nodePod.container.resources, 'resources').requests, 'requests').cpu,
        'an HPA on CPU needs a CPU request',
      );
      for (const monitor of manifests.filter((m) => m.kind === 'ServiceMonitor')) {
        const selector = obj(obj(monitor.spec?.selector, 'selector').matchLabels, 'matchLabels') as Record<string, string>;
        const targets = manifests.filter((m) => m.kind === 'Service' && selects(selector, m.metadata.labels));
        assert.ok(targets.length > 0, `${name}: ServiceMonitor ${monitor.metadata.name} selects no Service`);
        for (const endpoint of arr(monitor.spec?.endpoints).map((e) => obj(e, 'endpoint'))) {
          assert.ok(
            targets.every((t) => arr(t.spec?.ports).some((p) => obj(p, 'port').name === endpoint.port)),
            `${name}: ServiceMonitor ${monitor.metadata.name} port ${str(endpoint.port)}`,
          );
        }
      }
    }
  });

  it('probes /readyz and /healthz, and gives the drain its time: grace > preStop + shutdown timeout > drain window', { skip }, () => {
    for (const [name, manifests] of rendered) {
      const config = manifests.find((m) => m.kind === 'ConfigMap' && m.metadata.name === 'nerve-config')!.data!;
      const node = nervePods(manifests).find((p) => arr(p.container.args)[0] === 'serve')!;
      const httpGet = (probe: string): Json => obj(obj(node.container[probe], probe).httpGet, `${probe}.httpGet`);
      assert.equal(httpGet('readinessProbe').path, '/readyz');
      assert.equal(httpGet('livenessProbe').path, '/healthz');
      const ports = arr(node.container.ports).map((p) => obj(p, 'port'));
      const nodePort = Number(
        arr(node.container.env)
          .map((e) => obj(e, 'env'))
          .find((e) => e.name === 'NERVE_PORT')?.value,
      );
      assert.ok(
        ports.some((p) => p.name === httpGet('readinessProbe').port && p.containerPort === nodePort),
        'the probes reach NERVE_PORT',
      );

      const preStop = arr(obj(obj(obj(node.container.lifecycle, 'lifecycle').preStop, 'preStop').exec, 'exec').command).map(str);
      assert.equal(preStop[0], 'sleep', 'preStop pauses (the image has /bin/sleep)');
      const pauseS = Number(preStop[1]);
      const shutdownMs = Number(config.NERVE_SHUTDOWN_TIMEOUT_MS || 10_000);
      const drainMs = Number(config.NERVE_DRAIN_WINDOW_MS || 10_000);
      const grace = Number(node.spec.terminationGracePeriodSeconds);
      assert.ok(drainMs <= shutdownMs - 1000, `${name}: the drain window ${drainMs} ms is capped at the shutdown timeout minus 1 s (${shutdownMs - 1000} ms)`);
      assert.ok(
        grace * 1000 >= pauseS * 1000 + shutdownMs + 5000,
        `${name}: terminationGracePeriodSeconds ${grace} < preStop ${pauseS} s + shutdown ${shutdownMs / 1000} s + 5 s`,
      );
      const strategy = obj(obj(node.deployment.spec?.strategy, 'strategy').rollingUpdate, 'rollingUpdate');
      assert.equal(strategy.maxUnavailable, 0, 'a rollout drains one node at a time and never lowers capacity');
    }
  });

  it('production uses Redis Cluster (sharded) and quorum queues on a RabbitMQ cluster, matching services/', { skip }, () => {
    const config = rendered.get('production')!.find((m) => m.kind === 'ConfigMap')!.data!;
    assert.equal(config.NERVE_REDIS_MODE, 'sharded');
    assert.equal(config.NERVE_QUORUM_QUEUES, 'true');
    const secrets = Object.fromEntries(
      readFileSync(join(K8S, 'secrets.env.example'), 'utf8')
        .split('\n')
        .filter((line) => /^[A-Z_]+=/.test(line))
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    ) as Record<string, string>;
    const redisValues = obj(parse(readFileSync(join(K8S, 'services', 'redis-cluster.values.yaml'), 'utf8')), 'redis values');
    const cluster = obj(redisValues.cluster, 'cluster');
    assert.ok(Number(cluster.nodes) >= 6 && Number(cluster.replicas) >= 1, 'Redis Cluster: 3 masters with a replica each');
    assert.match(str(obj(redisValues.redis, 'redis').configmap), /client-output-buffer-limit pubsub/);
    assert.equal(new URL(secrets.NERVE_REDIS_URL!).hostname, 'nerve-redis-cluster.redis.svc', 'the URL names the release of redis-cluster.values.yaml');
    const rabbit = obj(parse(readFileSync(join(K8S, 'services', 'rabbitmq-cluster.yaml'), 'utf8')), 'RabbitmqCluster');
    const meta = obj(rabbit.metadata, 'metadata');
    assert.equal(obj(rabbit.spec, 'spec').replicas, 3, 'quorum queues: an odd number of brokers');
    assert.equal(new URL(secrets.NERVE_AMQP_URL!).hostname, `${str(meta.name)}.${str(meta.namespace)}.svc`);
  });
});
