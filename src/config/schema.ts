import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { SIGNING_ALGORITHMS } from '../crypto/index.ts';

/**
 * The one configuration schema. Every key has a description, a default (or a
 * stated derived default), and the environment variable that sets it; the
 * README's configuration table is generated from this file
 * (`npm run config:table`) and a test fails if the two drift.
 *
 * Extra schema options used here:
 * - `env`: the PORTCULLIS_* variable that sets the key;
 * - `secret`: `config check` masks the value (or the password in a URL);
 * - `derived`: how the default is computed when no value is given.
 */

/** A duration as operators write it: a whole number and a unit (s, m, h, d). */
export const DURATION_PATTERN = '^[1-9][0-9]{0,8}(s|m|h|d)$';

const port = (description: string, env: string, value: number) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: value, description, env });

export const ConfigSchema = Type.Object(
  {
    mode: Type.Union([Type.Literal('development'), Type.Literal('production')], {
      default: 'development',
      env: 'PORTCULLIS_MODE',
      description:
        'development binds loopback and derives the issuer from the port; production requires an https issuer and TLS or trustProxy.',
    }),
    host: Type.String({
      minLength: 1,
      env: 'PORTCULLIS_HOST',
      derived: '127.0.0.1 in development, 0.0.0.0 in production',
      description: 'Address the HTTP listener binds.',
    }),
    port: port('TCP port of the HTTP listener (0 picks a free port).', 'PORTCULLIS_PORT', 9000),
    issuer: Type.String({
      minLength: 1,
      env: 'PORTCULLIS_ISSUER',
      derived: 'http://127.0.0.1:<port> in development; required in production',
      description: 'The public URL of this server, the `iss` of every token (an https URL in production).',
    }),
    dataDir: Type.String({
      minLength: 1,
      default: './data',
      env: 'PORTCULLIS_DATA_DIR',
      description: 'Directory of the embedded SQLite database and the master key file.',
    }),
    masterKeyFile: Type.String({
      minLength: 1,
      env: 'PORTCULLIS_MASTER_KEY_FILE',
      derived: '<dataDir>/master.key',
      description: 'File holding the 256-bit master key that encrypts private keys at rest (created by `portcullis init`, mode 0600).',
    }),
    masterKey: Type.Optional(
      Type.String({
        pattern: '^[A-Za-z0-9_-]{43}$',
        expected: '43 base64url characters (32 bytes)',
        env: 'PORTCULLIS_MASTER_KEY',
        secret: true,
        description: 'The master key itself (base64url, 32 bytes), instead of the file; every scale-out instance needs the same one.',
      }),
    ),
    database: Type.Object(
      {
        url: Type.Optional(
          Type.String({
            pattern: '^postgres(ql)?://',
            expected: 'a postgres:// or postgresql:// URL',
            env: 'PORTCULLIS_DATABASE_URL',
            secret: true,
            description: 'PostgreSQL URL. Unset: the embedded SQLite file `<dataDir>/portcullis.db`.',
          }),
        ),
        schema: Type.Optional(
          Type.String({
            pattern: '^[a-z_][a-z0-9_]{0,62}$',
            expected: 'a schema name: a lower-case letter or _, then up to 62 lower-case letters, digits or _',
            env: 'PORTCULLIS_DATABASE_SCHEMA',
            description: 'PostgreSQL schema to use (it must exist). Unset: the server default (`public`).',
          }),
        ),
        poolSize: Type.Integer({ minimum: 1, maximum: 200, default: 10, env: 'PORTCULLIS_DATABASE_POOL_SIZE', description: 'PostgreSQL connections per instance.' }),
      },
      { additionalProperties: false, default: {} },
    ),
    redis: Type.Object(
      {
        url: Type.Optional(
          Type.String({
            pattern: '^rediss?://',
            expected: 'a redis:// or rediss:// URL (comma-separated with redis.cluster)',
            env: 'PORTCULLIS_REDIS_URL',
            secret: true,
            description: 'Redis URL for the hot store; with `redis.cluster`, a comma-separated list of seed node URLs.',
          }),
        ),
        cluster: Type.Boolean({ default: false, env: 'PORTCULLIS_REDIS_CLUSTER', description: 'Connect to a Redis Cluster instead of a single node.' }),
        keyPrefix: Type.String({
          minLength: 1,
          maxLength: 64,
          default: 'portcullis:',
          env: 'PORTCULLIS_REDIS_KEY_PREFIX',
          description: 'Prefix of every Redis key, so several deployments can share one Redis.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    hotStore: Type.Union([Type.Literal('auto'), Type.Literal('memory'), Type.Literal('sqlite'), Type.Literal('redis')], {
      default: 'auto',
      env: 'PORTCULLIS_HOT_STORE',
      description: 'Driver of the hot store. auto: redis when `redis.url` is set, else sqlite.',
    }),
    store: Type.Object(
      {
        timeoutMs: Type.Integer({
          minimum: 100,
          maximum: 600_000,
          default: 5_000,
          env: 'PORTCULLIS_STORE_TIMEOUT_MS',
          description:
            'Longest wait for one PostgreSQL or Redis call (and for a connection to it) before it fails as a store outage (503); migrations are not cut by it.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    tls: Type.Object(
      {
        certFile: Type.Optional(Type.String({ minLength: 1, env: 'PORTCULLIS_TLS_CERT_FILE', description: 'PEM certificate chain; with keyFile, the server speaks HTTPS.' })),
        keyFile: Type.Optional(Type.String({ minLength: 1, env: 'PORTCULLIS_TLS_KEY_FILE', description: 'PEM private key of the certificate.' })),
        mtlsPort: Type.Optional(
          Type.Integer({
            minimum: 0,
            maximum: 65535,
            env: 'PORTCULLIS_TLS_MTLS_PORT',
            description: 'Opens a second listener here that requires a client certificate chained to the built-in CA (RFC 8705 mtls_endpoint_aliases; HTTP/1.1 only, so WebSocket upgrades work).',
          }),
        ),
        mtlsCertFile: Type.Optional(
          Type.String({ minLength: 1, env: 'PORTCULLIS_TLS_MTLS_CERT_FILE', description: 'PEM certificate chain of the mTLS listener; without it, the built-in CA issues one and renews it at two thirds of its lifetime.' }),
        ),
        mtlsKeyFile: Type.Optional(Type.String({ minLength: 1, env: 'PORTCULLIS_TLS_MTLS_KEY_FILE', description: 'PEM private key of the mTLS listener certificate.' })),
        watchDebounceMs: Type.Integer({
          minimum: 10,
          maximum: 60_000,
          default: 250,
          env: 'PORTCULLIS_TLS_WATCH_DEBOUNCE_MS',
          description: 'Certificate and key files are watched; a change is loaded this long after the last write (a half-written pair is never used).',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    trustProxy: Type.Array(Type.String({ minLength: 1 }), {
      default: [],
      env: 'PORTCULLIS_TRUST_PROXY',
      description:
        'Reverse proxies whose X-Forwarded-*, X-Request-Id and traceparent headers are believed (addresses, CIDRs, or loopback/linklocal/uniquelocal; comma-separated in the env var).',
    }),
    pki: Type.Object(
      {
        trustDomain: Type.Optional(
          Type.String({
            minLength: 1,
            maxLength: 255,
            pattern: '^[a-z0-9._-]+$',
            env: 'PORTCULLIS_PKI_TRUST_DOMAIN',
            derived: 'the issuer host',
            description: 'SPIFFE trust domain of the built-in CA: issued certificates name spiffe://TRUST_DOMAIN/... (lowercase letters, digits, dot, dash, underscore).',
          }),
        ),
        defaultTtl: Type.String({ pattern: DURATION_PATTERN, default: '24h', env: 'PORTCULLIS_PKI_DEFAULT_TTL', description: 'Lifetime of an issued certificate when the request names none (s, m, h or d).' }),
        maxTtl: Type.String({ pattern: DURATION_PATTERN, default: '168h', env: 'PORTCULLIS_PKI_MAX_TTL', description: 'Longest lifetime an issued certificate may have; a longer request is refused.' }),
        crlTtl: Type.String({ pattern: DURATION_PATTERN, default: '1h', env: 'PORTCULLIS_PKI_CRL_TTL', description: 'The CRL at /ca/crl is re-signed at least this often (its nextUpdate); a revocation re-signs it at once.' }),
      },
      { additionalProperties: false, default: {} },
    ),
    signals: Type.Object(
      {
        maxRetryHours: Type.Number({
          minimum: 0.001,
          maximum: 720,
          default: 24,
          env: 'PORTCULLIS_SIGNALS_MAX_RETRY_HOURS',
          description: 'A push stream whose receiver keeps failing for this long is paused; it resumes from where it stopped when the receiver answers again (probed at the retry ceiling) or re-enables it.',
        }),
        retryCeiling: Type.String({ pattern: DURATION_PATTERN, default: '5m', env: 'PORTCULLIS_SIGNALS_RETRY_CEILING', description: 'Longest wait between two push attempts to a failing receiver (the backoff doubles from 1 s up to this).' }),
        pushPrivateNetworks: Type.Boolean({
          default: false,
          env: 'PORTCULLIS_SIGNALS_PUSH_PRIVATE_NETWORKS',
          description: 'Allow push receivers on loopback and private addresses, and over plain http (SSRF: only for tests and closed networks).',
        }),
        pushTimeout: Type.String({ pattern: DURATION_PATTERN, default: '10s', env: 'PORTCULLIS_SIGNALS_PUSH_TIMEOUT', description: 'Time a receiver has to answer one pushed SET (RFC 8935).' }),
        retention: Type.String({ pattern: DURATION_PATTERN, default: '7d', env: 'PORTCULLIS_SIGNALS_RETENTION', description: 'How long an event stays available to streams that have not received it (poll, WebSocket resume, a paused push stream).' }),
        pollMaxEvents: Type.Integer({ minimum: 1, maximum: 1000, default: 100, env: 'PORTCULLIS_SIGNALS_POLL_MAX_EVENTS', description: 'Most SETs one poll response carries (RFC 8936 maxEvents is capped here).' }),
        pollWait: Type.String({ pattern: DURATION_PATTERN, default: '25s', env: 'PORTCULLIS_SIGNALS_POLL_WAIT', description: 'How long a long poll (returnImmediately false) waits for an event before answering empty.' }),
        maxStreamsPerClient: Type.Integer({ minimum: 1, maximum: 100, default: 5, env: 'PORTCULLIS_SIGNALS_MAX_STREAMS_PER_CLIENT', description: 'Streams one receiver (client) may have.' }),
        socketMaxFrameBytes: Type.Integer({ minimum: 128, maximum: 1_048_576, default: 4096, env: 'PORTCULLIS_SIGNALS_SOCKET_MAX_FRAME_BYTES', description: 'Largest WebSocket frame a client may send to /signals/ws (acks are small); larger closes with 1009.' }),
        socketMaxBufferedBytes: Type.Integer({ minimum: 1024, maximum: 268_435_456, default: 1_048_576, env: 'PORTCULLIS_SIGNALS_SOCKET_MAX_BUFFERED_BYTES', description: 'A WebSocket client whose unsent data passes this is too slow: closed with 1013, it resumes later with ?after=.' }),
        socketsPerClient: Type.Integer({ minimum: 1, maximum: 10_000, default: 10, env: 'PORTCULLIS_SIGNALS_SOCKETS_PER_CLIENT', description: 'WebSocket subscriptions one client may hold at once, on this instance.' }),
        socketHeartbeat: Type.String({ pattern: DURATION_PATTERN, default: '15s', env: 'PORTCULLIS_SIGNALS_SOCKET_HEARTBEAT', description: 'Interval of WebSocket pings; a client that misses two is disconnected.' }),
      },
      { additionalProperties: false, default: {} },
    ),
    plugins: Type.Object(
      {
        trustedKeys: Type.Array(Type.String({ pattern: '^RW[A-Za-z0-9+/]{54}$' }), {
          default: [],
          env: 'PORTCULLIS_PLUGINS_TRUSTED_KEYS',
          description:
            'minisign public keys (the base64 line of plugin.pub, as `portcullis plugin keygen` prints it) whose signatures on plugin packages are trusted; comma-separated in the env var.',
        }),
        quarantineCrashes: Type.Integer({ minimum: 1, maximum: 100, default: 5, env: 'PORTCULLIS_PLUGINS_QUARANTINE_CRASHES', description: 'A plugin that crashes (or breaks the protocol, or calls a host method it did not declare) this many times within plugins.quarantineWindow is quarantined: disabled, audited, and announced as plugin.quarantined.' }),
        quarantineWindow: Type.String({ pattern: DURATION_PATTERN, default: '1m', env: 'PORTCULLIS_PLUGINS_QUARANTINE_WINDOW', description: 'The window plugins.quarantineCrashes counts in.' }),
        maxMissedDeadlines: Type.Integer({ minimum: 1, maximum: 100, default: 3, env: 'PORTCULLIS_PLUGINS_MAX_MISSED_DEADLINES', description: 'A plugin that misses this many deadlines in a row is killed and restarted (a loop or a hang holds no request past its deadline, but holds its process).' }),
        breakerReset: Type.String({ pattern: DURATION_PATTERN, default: '5s', env: 'PORTCULLIS_PLUGINS_BREAKER_RESET', description: 'How long a plugin\'s open circuit breaker refuses calls at once before one probe call is let through (half-open).' }),
        restartBackoffMs: Type.Integer({ minimum: 10, maximum: 60_000, default: 200, env: 'PORTCULLIS_PLUGINS_RESTART_BACKOFF_MS', description: 'The first wait before a crashed plugin is started again; it doubles with each crash in the window, up to 30 s.' }),
        fetchPrivateNetworks: Type.Boolean({ default: false, env: 'PORTCULLIS_PLUGINS_FETCH_PRIVATE_NETWORKS', description: 'Let the http.fetch host call reach loopback and private addresses (SSRF: only for tests and closed networks); the origin allow-list applies either way.' }),
        fetchCaFile: Type.Optional(Type.String({ minLength: 1, env: 'PORTCULLIS_PLUGINS_FETCH_CA_FILE', description: 'PEM file of CA certificates the http.fetch host call trusts besides the system roots (a private PKI).' })),
      },
      { additionalProperties: false, default: {} },
    ),
    privacy: Type.Object(
      {
        erasureGraceDays: Type.Integer({
          minimum: 0,
          maximum: 30,
          default: 0,
          env: 'PORTCULLIS_PRIVACY_ERASURE_GRACE_DAYS',
          description: 'Days between a person asking to delete their account and the erasure (0: at once). Meanwhile the account page offers to cancel; the erasure job carries it out when due.',
        }),
        recipientDeadlineHours: Type.Number({
          minimum: 0.01,
          maximum: 720,
          default: 72,
          env: 'PORTCULLIS_PRIVACY_RECIPIENT_DEADLINE_HOURS',
          description: 'GDPR Art. 19: time each recipient (an application that received data about the person) has to be told of an erasure before its delivery is overdue (still retried, and announced as privacy.recipient.overdue).',
        }),
        notifyPrivateNetworks: Type.Boolean({
          default: false,
          env: 'PORTCULLIS_PRIVACY_NOTIFY_PRIVATE_NETWORKS',
          description: 'Allow erasure_notification_uri on loopback and private addresses, and over plain http (SSRF: only for tests and closed networks).',
        }),
        exportsPerDay: Type.Integer({ minimum: 1, maximum: 100, default: 5, env: 'PORTCULLIS_PRIVACY_EXPORTS_PER_DAY', description: 'Data exports one person may download per day from the account page (GDPR Art. 15(3): further copies may be limited).' }),
        tombstoneFile: Type.Optional(
          Type.String({
            minLength: 1,
            env: 'PORTCULLIS_PRIVACY_TOMBSTONE_FILE',
            derived: '<dataDir>/erasure-tombstones.jsonl',
            description: 'Where erasures are also remembered, outside the database (keyed hashes only), so `portcullis privacy reapply` can erase again anyone a restored backup brought back. Keep it out of the database backups.',
          }),
        ),
        purposes: Type.Array(
          Type.Object(
            {
              id: Type.String({ pattern: '^[a-z][a-z0-9_-]{0,39}$' }),
              description: Type.String({ minLength: 1, maxLength: 500 }),
              legalBasis: Type.Union([
                Type.Literal('consent'),
                Type.Literal('contract'),
                Type.Literal('legal_obligation'),
                Type.Literal('vital_interests'),
                Type.Literal('public_task'),
                Type.Literal('legitimate_interests'),
              ]),
              version: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
              scopes: Type.Optional(Type.Array(Type.String({ pattern: '^[\\x21\\x23-\\x5b\\x5d-\\x7e]+$', maxLength: 128 }), { maxItems: 50 })),
            },
            { additionalProperties: false },
          ),
          {
            default: [],
            maxItems: 50,
            env: 'PORTCULLIS_PRIVACY_PURPOSES',
            description:
              'Purposes of processing (GDPR Art. 6, 13(1)(c)): each {id, description, legalBasis, version, scopes?}. Purposes with legalBasis consent are asked for at sign-in, again when their version goes up, and can be withdrawn on the account page; `scopes` names the OAuth scopes that serve the purpose. In the env var: a JSON array.',
          },
        ),
        retention: Type.Object(
          {
            inactiveAccountDays: Type.Integer({ minimum: 0, maximum: 36_500, default: 0, env: 'PORTCULLIS_PRIVACY_INACTIVE_ACCOUNT_DAYS', description: 'Accounts nobody signed in to for this many days are erased after a notice (0: never).' }),
            inactiveNoticeDays: Type.Integer({ minimum: 1, maximum: 365, default: 30, env: 'PORTCULLIS_PRIVACY_INACTIVE_NOTICE_DAYS', description: 'How long before erasing an inactive account its owner is sent a notice; signing in keeps the account.' }),
            sessionDays: Type.Integer({ minimum: 0, maximum: 3650, default: 0, env: 'PORTCULLIS_PRIVACY_SESSION_DAYS', description: 'Sessions (with their device and masked IP) older than this many days are ended and dropped (0: only their own timeouts apply).' }),
            ipPseudonymiseDays: Type.Integer({ minimum: 0, maximum: 3650, default: 0, env: 'PORTCULLIS_PRIVACY_IP_PSEUDONYMISE_DAYS', description: 'IP addresses kept in stored records (sessions) are replaced by a keyed pseudonym after this many days (0: never).' }),
            interval: Type.String({ pattern: DURATION_PATTERN, default: '1h', env: 'PORTCULLIS_PRIVACY_RETENTION_INTERVAL', description: 'How often the retention and erasure job runs (one instance at a time, under a lease).' }),
          },
          { additionalProperties: false, default: {} },
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    mail: Type.Object(
      {
        smtpUrl: Type.Optional(
          Type.String({
            pattern: '^smtps?://[^/?#]',
            expected: 'an smtp:// or smtps:// URL (smtp://user:password@host:port)',
            env: 'PORTCULLIS_MAIL_SMTP_URL',
            secret: true,
            description:
              'The SMTP server mail is sent through (today: the inactivity notices of privacy.retention.inactiveAccountDays). smtps:// is TLS from the start; smtp:// to a host other than loopback must offer STARTTLS. Unset: no mail is sent, and inactive accounts are not erased.',
          }),
        ),
        from: Type.Optional(
          Type.String({
            maxLength: 320,
            pattern: '^([^<>\\r\\n]*<[^\\s<>@]+@[^\\s<>@]+>|[^\\s<>@]+@[^\\s<>@]+)$',
            expected: 'an address, or a name and an address in angle brackets (Portcullis <no-reply@example.com>)',
            env: 'PORTCULLIS_MAIL_FROM',
            derived: 'no-reply@<issuer host>',
            description: 'The From of the mail Portcullis sends.',
          }),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    http: Type.Object(
      {
        bodyLimitBytes: Type.Integer({ minimum: 1024, maximum: 16 * 1024 * 1024, default: 102_400, env: 'PORTCULLIS_HTTP_BODY_LIMIT_BYTES', description: 'Largest request body accepted; larger gets 413.' }),
        headersTimeoutMs: Type.Integer({ minimum: 1000, default: 10_000, env: 'PORTCULLIS_HTTP_HEADERS_TIMEOUT_MS', description: 'Time allowed to receive request headers (slowloris defence).' }),
        requestTimeoutMs: Type.Integer({ minimum: 1000, default: 30_000, env: 'PORTCULLIS_HTTP_REQUEST_TIMEOUT_MS', description: 'Time allowed to receive a whole request.' }),
        keepAliveTimeoutMs: Type.Integer({ minimum: 100, default: 5_000, env: 'PORTCULLIS_HTTP_KEEP_ALIVE_TIMEOUT_MS', description: 'Idle time before a keep-alive connection is closed.' }),
        shutdownTimeoutMs: Type.Integer({ minimum: 100, default: 10_000, env: 'PORTCULLIS_HTTP_SHUTDOWN_TIMEOUT_MS', description: 'On SIGTERM, how long in-flight requests may take before the process exits anyway.' }),
      },
      { additionalProperties: false, default: {} },
    ),
    log: Type.Object(
      {
        level: Type.Union(
          ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((level) => Type.Literal(level)),
          { default: 'info', env: 'PORTCULLIS_LOG_LEVEL', description: 'Least severe level written to stdout (JSON lines).' },
        ),
        personalData: Type.Union([Type.Literal('mask'), Type.Literal('hash'), Type.Literal('redact')], {
          default: 'mask',
          env: 'PORTCULLIS_LOG_PERSONAL_DATA',
          description:
            'How emails, phone numbers and IP addresses appear in logs: mask (partly hidden), hash (keyed pseudonym, correlatable), redact (removed).',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    metrics: Type.Object(
      {
        enabled: Type.Boolean({ default: true, env: 'PORTCULLIS_METRICS_ENABLED', description: 'Serve Prometheus metrics at /metrics.' }),
        token: Type.Optional(
          Type.String({
            minLength: 32,
            maxLength: 512,
            pattern: '^[\\x21-\\x7e]+$',
            env: 'PORTCULLIS_METRICS_TOKEN',
            secret: true,
            description: 'Bearer token a scraper must send to /metrics (at least 32 characters). In production, /metrics needs this or `metrics.port`, else it is not served.',
          }),
        ),
        port: Type.Optional(
          Type.Integer({
            minimum: 0,
            maximum: 65535,
            env: 'PORTCULLIS_METRICS_PORT',
            description: 'Serve /metrics on a listener of its own at this port (0 picks a free one), and not on the main listener.',
          }),
        ),
        host: Type.String({
          minLength: 1,
          default: '127.0.0.1',
          env: 'PORTCULLIS_METRICS_HOST',
          description: 'Address the metrics listener binds (with `metrics.port`): loopback unless you say otherwise.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    audit: Type.Object(
      {
        origin: Type.Optional(
          Type.String({
            pattern: '^[^\\s+]+$',
            expected: 'a name without spaces or "+"',
            maxLength: 200,
            env: 'PORTCULLIS_AUDIT_ORIGIN',
            derived: '<issuer host and path>/audit, fixed when the log key is made',
            description: "The audit log's name: the origin line of its checkpoints and its key name (C2SP tlog-checkpoint). Used only when the log key is first made.",
          }),
        ),
        checkpointIntervalMs: Type.Integer({
          minimum: 0,
          default: 60_000,
          env: 'PORTCULLIS_AUDIT_CHECKPOINT_INTERVAL_MS',
          description: 'How often a new signed checkpoint is made when the log has grown (0: only on demand).',
        }),
        ipAddresses: Type.Union([Type.Literal('truncate'), Type.Literal('hash'), Type.Literal('omit')], {
          default: 'truncate',
          env: 'PORTCULLIS_AUDIT_IP_ADDRESSES',
          description: 'How client IP addresses enter audit entries: truncate (IPv4 /24, IPv6 /48), hash (keyed pseudonym), omit.',
        }),
        witnesses: Type.Array(Type.String({ minLength: 1, maxLength: 300 }), {
          default: [],
          env: 'PORTCULLIS_AUDIT_WITNESSES',
          description: 'Witness verifier keys (C2SP tlog-cosignature, `name+keyid+base64`) whose cosignatures the server accepts and serves.',
        }),
        maxPendingEntries: Type.Integer({
          minimum: 1,
          default: 10_000,
          env: 'PORTCULLIS_AUDIT_MAX_PENDING_ENTRIES',
          description: 'Entries waiting to be written before `record` refuses more (503 with Retry-After) instead of growing memory.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    identity: Type.Object(
      {
        passwordMemoryCostKiB: Type.Integer({
          minimum: 19_456,
          maximum: 4_194_304,
          default: 19_456,
          env: 'PORTCULLIS_IDENTITY_PASSWORD_MEMORY_COST_KIB',
          description: 'argon2id memory per password hash, in KiB (OWASP minimum 19456 = 19 MiB). Raising it upgrades each hash at its next login.',
        }),
        passwordTimeCost: Type.Integer({
          minimum: 2,
          maximum: 100,
          default: 2,
          env: 'PORTCULLIS_IDENTITY_PASSWORD_TIME_COST',
          description: 'argon2id passes per password hash (OWASP minimum 2 at 19 MiB).',
        }),
        passwordParallelism: Type.Integer({
          minimum: 1,
          maximum: 16,
          default: 1,
          env: 'PORTCULLIS_IDENTITY_PASSWORD_PARALLELISM',
          description: 'argon2id lanes per password hash.',
        }),
        sessionIdleTimeoutMs: Type.Integer({
          minimum: 60_000,
          default: 1_800_000,
          env: 'PORTCULLIS_IDENTITY_SESSION_IDLE_TIMEOUT_MS',
          description: 'A session unused for this long ends (sliding: each use renews it).',
        }),
        sessionAbsoluteTimeoutMs: Type.Integer({
          minimum: 60_000,
          default: 43_200_000,
          env: 'PORTCULLIS_IDENTITY_SESSION_ABSOLUTE_TIMEOUT_MS',
          description: 'A session ends this long after sign-in, however much it is used.',
        }),
        sessionRenewIntervalMs: Type.Integer({
          minimum: 1_000,
          default: 60_000,
          env: 'PORTCULLIS_IDENTITY_SESSION_RENEW_INTERVAL_MS',
          description: 'Sliding renewal writes at most once per this interval per session (reads stay cheap).',
        }),
        maxSessionsPerUser: Type.Integer({
          minimum: 1,
          maximum: 1000,
          default: 10,
          env: 'PORTCULLIS_IDENTITY_MAX_SESSIONS_PER_USER',
          description: 'Sessions one user may hold; a new sign-in ends the oldest.',
        }),
        totpIssuer: Type.Optional(
          Type.String({
            // The otpauth URI's issuer label: no colon (it separates issuer and account in the label).
            pattern: '^[^:]{1,64}$',
            env: 'PORTCULLIS_IDENTITY_TOTP_ISSUER',
            description: "The name authenticator apps show beside the account (the otpauth URI's issuer); default: the issuer's host name.",
          }),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    tokens: Type.Object(
      {
        signingAlgorithm: Type.Union(SIGNING_ALGORITHMS.map((alg) => Type.Literal(alg)), {
          default: 'EdDSA',
          env: 'PORTCULLIS_TOKENS_SIGNING_ALGORITHM',
          description: 'JWS algorithm of access tokens unless their resource names another (EdDSA is Ed25519). ID tokens are RS256 unless the client registers another algorithm (OIDC Dynamic Client Registration section 2).',
        }),
        keyRotationIntervalMs: Type.Integer({
          minimum: 60_000,
          default: 2_592_000_000,
          env: 'PORTCULLIS_TOKENS_KEY_ROTATION_INTERVAL_MS',
          description: 'A signing key signs for this long; its successor is published at least one JWKS cache lifetime before it takes over.',
        }),
        jwksMaxAgeSeconds: Type.Integer({
          minimum: 1,
          maximum: 86_400,
          default: 600,
          env: 'PORTCULLIS_TOKENS_JWKS_MAX_AGE_SECONDS',
          description: '`Cache-Control: max-age` of /jwks: how long a verifier may keep it, so how early a new key is published.',
        }),
        keyringRefreshMs: Type.Integer({
          minimum: 100,
          default: 10_000,
          env: 'PORTCULLIS_TOKENS_KEYRING_REFRESH_MS',
          description: 'How often each instance re-reads the signing keys (picks up another instance\'s rotation or revocation).',
        }),
        accessTokenTtlSeconds: Type.Integer({
          minimum: 10,
          maximum: 86_400,
          default: 600,
          env: 'PORTCULLIS_TOKENS_ACCESS_TOKEN_TTL_SECONDS',
          description: 'Lifetime of access tokens (JWT, RFC 9068).',
        }),
        idTokenTtlSeconds: Type.Integer({
          minimum: 10,
          maximum: 86_400,
          default: 3600,
          env: 'PORTCULLIS_TOKENS_ID_TOKEN_TTL_SECONDS',
          description: 'Lifetime of ID tokens.',
        }),
        authorizationCodeTtlSeconds: Type.Integer({
          minimum: 10,
          maximum: 600,
          default: 60,
          env: 'PORTCULLIS_TOKENS_AUTHORIZATION_CODE_TTL_SECONDS',
          description: 'Lifetime of authorization codes (single use; RFC 6749 section 4.1.2 recommends at most 10 minutes).',
        }),
        refreshTokenIdleTtlSeconds: Type.Integer({
          minimum: 60,
          default: 1_209_600,
          env: 'PORTCULLIS_TOKENS_REFRESH_TOKEN_IDLE_TTL_SECONDS',
          description: 'A refresh token unused for this long expires (each use rotates it and restarts the clock).',
        }),
        refreshTokenAbsoluteTtlSeconds: Type.Integer({
          minimum: 60,
          default: 2_592_000,
          env: 'PORTCULLIS_TOKENS_REFRESH_TOKEN_ABSOLUTE_TTL_SECONDS',
          description: 'A refresh token family ends this long after the sign-in that started it, however it is used.',
        }),
        refreshGraceSeconds: Type.Integer({
          minimum: 0,
          maximum: 120,
          default: 10,
          env: 'PORTCULLIS_TOKENS_REFRESH_GRACE_SECONDS',
          description: 'A repeat of the same refresh by the same client within this window gets the same successor tokens instead of revoking the family.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    oauth: Type.Object(
      {
        registration: Type.Union([Type.Literal('open'), Type.Literal('token'), Type.Literal('off')], {
          env: 'PORTCULLIS_OAUTH_REGISTRATION',
          derived: 'open in development, token in production',
          description: 'Dynamic client registration (RFC 7591): open to anyone, only with the initial access token, or off.',
        }),
        initialAccessToken: Type.Optional(
          Type.String({
            minLength: 32,
            maxLength: 512,
            pattern: '^[\\x21-\\x7e]+$',
            expected: 'printable ASCII characters, no spaces',
            env: 'PORTCULLIS_OAUTH_INITIAL_ACCESS_TOKEN',
            secret: true,
            description: 'Bearer token that dynamic registration requires when `oauth.registration` is token (at least 32 characters).',
          }),
        ),
        dpopRequireNonce: Type.Boolean({
          default: false,
          env: 'PORTCULLIS_OAUTH_DPOP_REQUIRE_NONCE',
          description: 'DPoP proofs must carry a server nonce (RFC 9449 section 8): limits pre-made proofs, costs clients one extra round trip.',
        }),
        backchannelLogoutPrivateNetworks: Type.Boolean({
          env: 'PORTCULLIS_OAUTH_BACKCHANNEL_LOGOUT_PRIVATE_NETWORKS',
          derived: 'true in development, false in production',
          description: 'Back-channel logout may POST to loopback and private addresses. Off: a registered URI that is, or resolves to, such an address is refused (SSRF).',
        }),
        registrationScopes: Type.Array(Type.String({ pattern: '^[\\x21\\x23-\\x5b\\x5d-\\x7e]+$', maxLength: 128 }), {
          default: ['openid', 'profile', 'email', 'offline_access'],
          env: 'PORTCULLIS_OAUTH_REGISTRATION_SCOPES',
          description: 'The most a client registered anonymously (`oauth.registration` open) may get; asking for more is refused (RFC 7591 section 5). API scopes are granted with `portcullis client create --scope`.',
        }),
        initialAccessTokenScopes: Type.Array(Type.String({ pattern: '^[\\x21\\x23-\\x5b\\x5d-\\x7e]+$', maxLength: 128 }), {
          default: ['openid', 'profile', 'email', 'offline_access'],
          env: 'PORTCULLIS_OAUTH_INITIAL_ACCESS_TOKEN_SCOPES',
          description: 'The most a client registered with the initial access token may get: OpenID scopes and scopes of resources made with `portcullis resource create`.',
        }),
      },
      { additionalProperties: false, default: {} },
    ),
    admin: Type.Object(
      {
        token: Type.Optional(
          Type.String({
            minLength: 32,
            maxLength: 512,
            pattern: '^[\\x21-\\x7e]+$',
            expected: 'printable ASCII characters, no spaces',
            env: 'PORTCULLIS_ADMIN_TOKEN',
            secret: true,
            description: 'Static bearer token for admin APIs (`GET /audit/entries`), at least 32 characters. Unset: admin APIs answer 401.',
          }),
        ),
      },
      { additionalProperties: false, default: {} },
    ),
    migrateOnStart: Type.Boolean({
      default: true,
      env: 'PORTCULLIS_MIGRATE_ON_START',
      description: '`serve` applies pending migrations before listening (`--no-migrate` turns it off).',
    }),
  },
  { additionalProperties: false },
);

export type Config = Static<typeof ConfigSchema>;

/** Schema options this project adds to JSON Schema. */
export interface ConfigKeyOptions {
  readonly env?: string;
  readonly secret?: boolean;
  readonly derived?: string;
  /** What a valid value looks like, in words, for error messages (never the raw pattern). */
  readonly expected?: string;
  readonly description?: string;
  readonly default?: unknown;
}

export interface ConfigLeaf {
  /** Dotted path, e.g. `database.url`. */
  readonly path: string;
  readonly schema: TSchema & ConfigKeyOptions;
  readonly env: string;
}

/** Every settable key, in schema order. */
export function configLeaves(schema: TSchema = ConfigSchema, prefix = ''): ConfigLeaf[] {
  const leaves: ConfigLeaf[] = [];
  for (const [name, child] of Object.entries(schema['properties'] as Record<string, TSchema & ConfigKeyOptions>)) {
    const path = prefix ? `${prefix}.${name}` : name;
    if (child['type'] === 'object' && child['properties']) {
      leaves.push(...configLeaves(child, path));
    } else {
      if (child.env === undefined) throw new Error(`config key ${path} has no env variable`);
      leaves.push({ path, schema: child, env: child.env });
    }
  }
  return leaves;
}
