// dependency-cruiser: no import cycles, and imports point down the layers of
// docs/architecture.md only: shared parts (protocol, config, redis, postgres,
// errors, backoff) know no lane; lanes know no gateway, node or HTTP edge.
const SHARED = '^(packages/protocol/src|src/(config|redis|postgres|net)/|src/(errors|backoff|log-types)\\.ts$)';
const LANES = '^src/(auth|bus|history|presence|mailbox|sessions|events|registry|quotas|usage|tracing|workers)/';
const UPPER = '^src/(gateway/|http/|pusher/|cli/|node\\.ts$|embed\\.ts$|index\\.ts$)';

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
      name: 'shared-imports-no-lane-or-edge',
      severity: 'error',
      comment: 'Shared parts sit below every lane and edge; an import upward draws a cycle of rooms.',
      from: { path: SHARED },
      to: { path: `${LANES}|${UPPER}` },
    },
    {
      name: 'lane-imports-no-edge',
      severity: 'error',
      comment: 'Lanes are driven by the node and the gateway, never the other way round.',
      from: { path: LANES },
      to: { path: UPPER },
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
