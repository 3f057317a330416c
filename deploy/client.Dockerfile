# syntax=docker/dockerfile:1
# An ftl site (ftl-client) as a container. Its cache (backbone, features, privacy ledger, audit log) is on the
# volume /var/lib/ftl; mount the site's data read-only and its token and CA as files. Build from the
# repository root:
#
#   docker build -f deploy/client.Dockerfile -t ftl-client .
#   docker run -d --name ftl-site --restart on-failure -v ftl-site-cache:/var/lib/ftl \
#     -v /srv/ftl-data:/data:ro -v /etc/ftl:/etc/ftl:ro ftl-client \
#     --server https://coordinator.example.org:8443 --ca-file /etc/ftl/ca.pem --name hospital-a \
#     --token-file /etc/ftl/hospital-a.token --data-dir /data --feature-cache-max-mb 2048 --stay
#   docker exec ftl-site ftl-client audit --name hospital-a
#
# The image installs the packed tarballs of @ftl/shared and @ftl/client, production dependencies only: no
# SQLite, no test tools, no built-in datasets (packages/client/src/packaging.test.ts installs them the same
# way). The tests parse this file; Docker itself does not run where they run.

ARG NODE_IMAGE=node:20-slim

# 1. Build: compile the TypeScript of the two packages and pack them.
FROM ${NODE_IMAGE} AS build
WORKDIR /src
COPY . .
RUN npm ci --no-audit --no-fund --ignore-scripts --include-workspace-root \
      --workspace packages/shared --workspace packages/client \
 && npx tsc -b packages/client \
 && mkdir /packed \
 && npm pack --workspace packages/shared --workspace packages/client --pack-destination /packed

# 2. Install the tarballs alone, without dev dependencies (and without tfjs-node: the client runs on WASM).
FROM ${NODE_IMAGE} AS install
WORKDIR /opt/ftl
COPY --from=build /packed/ /tmp/packed/
RUN echo '{"name":"ftl-site-image","private":true}' > package.json \
 && npm install --omit=dev --omit=optional --no-audit --no-fund /tmp/packed/*.tgz \
 && rm -rf /tmp/packed

# 3. Run: only the installed packages, as an unprivileged user.
FROM ${NODE_IMAGE}
RUN groupadd --system ftl \
 && useradd --system --gid ftl --home-dir /var/lib/ftl --shell /usr/sbin/nologin ftl \
 && mkdir -p /var/lib/ftl/.ftl/cache /data \
 && chown -R ftl:ftl /var/lib/ftl
COPY --from=install /opt/ftl /opt/ftl
ENV PATH=/opt/ftl/node_modules/.bin:$PATH \
    NODE_ENV=production \
    FTL_LOG=info
# The default --cache-dir .ftl/cache is relative to this folder, so the cache and `ftl-client audit` both use the volume.
WORKDIR /var/lib/ftl
VOLUME ["/var/lib/ftl"]
USER ftl
ENTRYPOINT ["ftl-client"]
CMD ["--help"]
