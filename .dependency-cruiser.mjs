// dependency-cruiser: no import cycles, and imports point down the layers of
// docs/architecture.md only. Bottom: the shared parts (protocol, errors,
// backoff, net, redis, postgres, ConfigError and the validators). Above them
// the lanes, and the options table (src/config) that parses their settings.
// Top: the edges (gateway, HTTP, the Pusher socket side, node, CLI). The
// Pusher signatures and webhook format are shared with the workers, so they
// count as lane-level, not edge.
const SHARED = '^(packages/protocol/src/|src/(redis|postgres|net)/|src/config/(errors|validate)\\.ts$|src/(errors|backoff|log-types)\\.ts$)';
const CONFIG = '^src/config/';
const LANES = '^src/(auth|bus|history|presence|mailbox|sessions|calls|events|registry|quotas|usage|tracing|workers)/';
const PUSHER_SHARED = '^src/pusher/(signature|webhooks)\\.ts$';
const MESSAGE_LANES = '^src/(bus|history|presence|mailbox|sessions|calls|registry|events|redis|postgres)/';
const EDGE = '^src/(gateway/|http/|pusher/|cli/|node\\.ts$|embed\\.ts$|index\\.ts$)';

/** @type {import('dependency-cruiser').IConfiguration} */
export default {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import cycle: the modules cannot be read, tested or loaded one after the other.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'shared-imports-nothing-above',
      severity: 'error',
      comment: 'Shared parts sit below every lane, the options table and the edges; an import upward ties the rooms together.',
      from: { path: SHARED },
      to: { path: `${LANES}|${CONFIG}|${EDGE}`, pathNot: SHARED },
    },
    {
      name: 'config-imports-no-lane-or-edge',
      severity: 'error',
      comment: "The options table parses the lanes' settings; the node and the edges read it; it reaches no lane above the shared Redis and PostgreSQL parts.",
      from: { path: CONFIG },
      to: { path: `${EDGE}|^src/(bus|history|presence|mailbox|sessions|calls|registry|events)/` },
    },
    {
      name: 'lane-reads-only-config-checks',
      severity: 'error',
      comment: 'A lane checks its own settings with ConfigError and the validators; the options table is read by the node, not by lanes.',
      from: { path: MESSAGE_LANES },
      to: { path: CONFIG, pathNot: '^src/config/(errors|validate)\\.ts$' },
    },
    {
      name: 'gateway-built-by-node-only',
      severity: 'error',
      comment: 'Only the node and the embedding API construct the gateway; everything else gets its narrow interfaces.',
      from: { pathNot: '^src/(node|embed)\\.ts$' },
      to: { path: '^src/gateway/gateway\\.ts$' },
    },
    {
      name: 'lane-imports-no-edge',
      severity: 'error',
      comment: 'Lanes are driven by the node and the gateway, never the other way round.',
      from: { path: LANES },
      to: { path: EDGE, pathNot: PUSHER_SHARED },
    },
    {
      name: 'protocol-is-standalone',
      severity: 'error',
      comment: 'The wire protocol is shared with the browser SDK: no server code, no Node built-ins.',
      from: { path: '^packages/protocol/src' },
      to: { path: '^(src|packages/client)/|^node:', dependencyTypesNot: ['type-only'] },
    },
    {
      name: 'client-has-no-server-dependency',
      severity: 'error',
      comment: 'The SDK runs in browsers and React Native: only the protocol package and itself.',
      from: { path: '^packages/client/src' },
      to: { pathNot: '^packages/(client|protocol)/src' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)dist/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] },
  },
};
