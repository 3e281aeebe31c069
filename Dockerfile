# Portcullis container image. Build: docker build -t portcullis .
# Run (production mode: an https issuer, and TLS or a trusted proxy in front):
#   docker run -p 9000:9000 -v portcullis-data:/var/lib/portcullis \
#     -e PORTCULLIS_ISSUER=https://id.example.com -e PORTCULLIS_TRUST_PROXY=10.0.0.0/8 portcullis
# The CMD runs node directly (exec form, no npm, no shell), so `docker stop`'s
# SIGTERM reaches the server and it shuts down gracefully.

# Stage 1: production dependencies only. `--omit=dev` leaves out the Node the
# package pins for development; the image's Node 26 runs it (engines: >=26).
FROM node:26-trixie-slim AS dependencies
WORKDIR /opt/portcullis
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

# Stage 2: the runtime image.
FROM node:26-trixie-slim
ENV NODE_ENV=production \
    PORTCULLIS_MODE=production \
    PORTCULLIS_DATA_DIR=/var/lib/portcullis \
    PORTCULLIS_PORT=9000
RUN groupadd --system portcullis \
 && useradd --system --gid portcullis --home-dir /var/lib/portcullis --shell /usr/sbin/nologin portcullis \
 && mkdir -p /var/lib/portcullis \
 && chown portcullis:portcullis /var/lib/portcullis \
 && chmod 0700 /var/lib/portcullis
WORKDIR /opt/portcullis
COPY --from=dependencies /opt/portcullis/node_modules ./node_modules
COPY package.json ./
COPY bin ./bin
COPY src ./src
USER portcullis
VOLUME ["/var/lib/portcullis"]
EXPOSE 9000
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch(`http://127.0.0.1:${process.env.PORTCULLIS_PORT || 9000}/healthz`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
STOPSIGNAL SIGTERM
# The semi-space flags fix V8's young generation at 16 MB semi-spaces (README:
# "Memory"), as npm start, the bin and the systemd unit do.
CMD ["node", "--disable-warning=ExperimentalWarning", "--min-semi-space-size=16", "--max-semi-space-size=16", "bin/portcullis.js", "serve"]
