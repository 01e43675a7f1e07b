# syntax=docker/dockerfile:1
# One image for the api and the worker (the command picks the service); a `demo` target holds only the dev tooling
# of the demo mTLS target (scripts/demo-compose.ts and scripts/lib). TypeScript runs directly on Node 24 (type stripping): there is
# no build step. Every stage that runs something runs as the unprivileged `node` user.

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/shared/package.json packages/shared/
COPY services/api/package.json services/api/
COPY services/worker/package.json services/worker/
RUN npm ci --omit=dev --no-audit --no-fund --ignore-scripts

FROM node:24-bookworm-slim AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY package.json ./
COPY packages packages
COPY services services
USER node
# 8080: the api; 9464: a worker's /healthz, /readyz and /metrics (METRICS_PORT).
EXPOSE 8080 9464
CMD ["node", "services/api/src/main.ts"]

FROM node:24-bookworm-slim AS demo
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/shared/package.json packages/shared/
COPY services/api/package.json services/api/
COPY services/worker/package.json services/worker/
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY scripts/demo-compose.ts scripts/
COPY scripts/lib scripts/lib
RUN mkdir -p /demo && chown node:node /demo
USER node
CMD ["node", "scripts/demo-compose.ts"]
