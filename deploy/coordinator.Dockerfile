# syntax=docker/dockerfile:1
# The ftl coordinator as a container: `ftl-coordinator serve`, its state (SQLite database, exports, operator
# token) on the volume /var/lib/ftl and any backbone of your own on /backbones. Build from the repository root:
#
#   docker build -f deploy/coordinator.Dockerfile -t ftl-coordinator .
#   docker run -d --name ftl-coordinator -p 8443:8443 -v ftl-state:/var/lib/ftl \
#     -v /etc/ftl/tls:/etc/ftl/tls:ro -e FTL_HEALTH_URL=https://127.0.0.1:8443/healthz ftl-coordinator \
#     serve --host 0.0.0.0 --port 8443 --tls-cert /etc/ftl/tls/cert.pem --tls-key /etc/ftl/tls/key.pem
#   docker exec ftl-coordinator ftl-coordinator clients add hospital-a --db .ftl/coordinator.db --save .ftl/hospital-a.token
#
# The image installs the packed tarballs of @ftl/shared and @ftl/coordinator, production dependencies only,
# the same way packages/client/src/packaging.test.ts installs the client. (The tests parse this file; Docker
# itself does not run where they run.)

ARG NODE_IMAGE=node:20-slim

# 1. Build: compile the TypeScript of the two packages and pack them.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY . .
RUN npm ci --no-audit --no-fund --ignore-scripts --include-workspace-root \
      --workspace packages/shared --workspace packages/coordinator \
 && npx tsc -b packages/coordinator \
 && mkdir /packed \
 && npm pack --workspace packages/shared --workspace packages/coordinator --pack-destination /packed

# 2. Install the tarballs alone, without dev dependencies. better-sqlite3 is compiled here when no prebuilt
#    binary fits the platform, so the compilers stay out of the final image.
FROM ${NODE_IMAGE} AS install
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/ftl
COPY --from=build /packed/ /tmp/packed/
RUN echo '{"name":"ftl-coordinator-image","private":true,"allowScripts":{"better-sqlite3":true}}' > package.json \
 && npm install --omit=dev --omit=optional --no-audit --no-fund /tmp/packed/*.tgz \
 && rm -rf /tmp/packed

# 3. Run: only the installed packages, as an unprivileged user.
FROM ${NODE_IMAGE}
RUN groupadd --system ftl \
 && useradd --system --gid ftl --home-dir /var/lib/ftl --shell /usr/sbin/nologin ftl \
 && mkdir -p /var/lib/ftl/.ftl /backbones \
 && chown -R ftl:ftl /var/lib/ftl
COPY --from=install /opt/ftl /opt/ftl
ENV PATH=/opt/ftl/node_modules/.bin:$PATH \
    NODE_ENV=production \
    FTL_LOG=info \
    FTL_HEALTH_URL=http://127.0.0.1:8080/healthz
# The database, exports and operator token: the default --db .ftl/coordinator.db is relative to this folder.
WORKDIR /var/lib/ftl
VOLUME ["/var/lib/ftl", "/backbones"]
USER ftl
EXPOSE 8080
# /healthz answers 200 while the process serves; the probe trusts any certificate because it only asks the
# server in this container over loopback (set FTL_HEALTH_URL to https://… when serving TLS).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "const u=new URL(process.env.FTL_HEALTH_URL);require(u.protocol==='https:'?'node:https':'node:http').get(u,{rejectUnauthorized:false,timeout:4000},(r)=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1))"]
ENTRYPOINT ["ftl-coordinator"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--db", ".ftl/coordinator.db"]
