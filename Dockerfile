# nerve: one image for the node (`serve`, the default) and every worker
# (`worker chat-store | billing | cleanup | analytics | webhooks`).
# No Docker engine runs where nerve is developed: test/integration/container-layout.test.ts
# rebuilds this file's layout (its COPY list and RUN steps) in a temporary folder and
# starts the node and every worker from it. docs/operations.md, "Containers".

FROM node:20-bookworm-slim AS build
WORKDIR /app
# npm workspaces: `npm ci` needs every workspace's package.json.
COPY package.json package-lock.json ./
COPY packages/protocol/package.json ./packages/protocol/
COPY packages/client/package.json ./packages/client/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
COPY packages ./packages
# The server and the browser SDK bundle it serves (dist/src, dist/packages/protocol,
# dist/web); the packages' own builds are for npm, not for the image.
RUN npx tsc -p tsconfig.build.json && node scripts/bundle-client.mjs

FROM node:20-bookworm-slim
# NERVE_METRICS_PORT: workers serve /metrics and /healthz there (off by default
# outside the image); nodes ignore it and serve both on NERVE_PORT.
ENV NODE_ENV=production NERVE_PORT=8080 NERVE_METRICS_PORT=9090
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/protocol/package.json ./packages/protocol/
COPY packages/client/package.json ./packages/client/
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
COPY web ./web
# The workers (and nodes with --bus rabbitmq) apply these at start.
COPY migrations ./migrations
COPY deploy/healthcheck.mjs ./deploy/healthcheck.mjs
# Files stay root-owned: the process (uid 1000, "node") reads them and writes nothing.
USER node
EXPOSE 8080 9090
# SIGTERM drains the node; give the container a stop grace period above
# --shutdown-timeout-ms (default 10 s), e.g. compose's stop_grace_period: 20s.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["node", "deploy/healthcheck.mjs"]
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["serve"]
