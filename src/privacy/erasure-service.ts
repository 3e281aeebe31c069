/**
 * The erasure side of the privacy workflows, assembled: erasures and the
 * notices to their recipients, legal holds, retention rules, and the
 * privacy job that runs on a schedule (privacy.retention.interval). The job
 * runs on one instance at a time: each run takes a hot-store lease for the
 * interval (renewed between pages of the retention pass), so two instances
 * do not both carry out an erasure that fell due or send a notice twice,
 * and the ledger records what each run did.
 */
import { randomUUID } from 'node:crypto';
import { parseDuration, type Config } from '../config/index.ts';
import type { KeyVault } from '../crypto/index.ts';
import type { DomainEvents, EventSubscriptions } from '../events/index.ts';
import type { Identity } from '../identity/index.ts';
import type { AuthorizationServer } from '../oauth/index.ts';
import { SIGNALS_TOPIC } from '../signals/index.ts';
import type { Clock, OutboxDeliverer, RecordStore, Stores } from '../store/index.ts';
import type { Keyring } from '../tokens/index.ts';
import type { CleanupReport } from './erasure-cleanup.ts';
import { ERASURE_NOTICE_TOPIC, Erasures } from './erasure.ts';
import { LegalHolds } from './holds.ts';
import { erasureNoticeDeliverer } from './notices.ts';
import { NOTICE_EMAIL_TOPIC, noticeEmailDeliverer, smtpSender } from './mail.ts';
import { ConsumerRequests } from './requests.ts';
import { Retention, type RetentionReport } from './retention.ts';
import { subjectHasher, type SubjectHasher } from './subjects.ts';

const HOUR_MS = 60 * 60_000;
const JOB_LEASE_KEY = 'privacy:job-lease';

export interface ErasureServiceOptions {
  readonly config: Readonly<Config>;
  readonly stores: Stores;
  readonly vault: KeyVault;
  readonly events: DomainEvents;
  /** Where the privacy workflows hear of profile and email changes (correction requests). */
  readonly subscriptions?: EventSubscriptions;
  readonly identity: Identity;
  readonly oauth: AuthorizationServer;
  readonly keyring: Pick<Keyring, 'signingKey'>;
  readonly clock: Clock;
  /** The ledger's pseudonym keys: destroyed inside an erasure's transaction. */
  readonly forgetPseudonym: (records: RecordStore, userId: string) => Promise<string | null>;
  readonly dropPseudonymIndex?: (pseudonym: string) => Promise<unknown>;
  readonly kickOutbox?: () => void;
  /** Told when an erasure's steps after its commit fail (the job retries them). */
  readonly onCleanupFailed?: (error: unknown) => void;
}

export interface JobReport {
  readonly erasuresCarriedOut: number;
  /** Erasures' steps after the commit: resumed after a crash or failure, last passes made, late records removed. */
  readonly cleanups: CleanupReport;
  readonly noticesOverdue: number;
  readonly requestsOverdue: number;
  /** What the retention rules did (privacy.retention.*). */
  readonly retention: RetentionReport;
}

export interface ErasureService {
  readonly erasures: Erasures;
  readonly holds: LegalHolds;
  readonly requests: ConsumerRequests;
  readonly subjects: SubjectHasher;
  readonly retention: Retention;
  /** Outbox deliverers by topic, for the outbox service. */
  readonly deliverers: Readonly<Record<string, OutboxDeliverer>>;
  /** One run of the job, if this instance gets the lease (null when another instance holds it). */
  runJob(): Promise<JobReport | null>;
  /** Runs the job every privacy.retention.interval (a server, not a command). */
  start(onError: (error: unknown) => void): void;
  close(): Promise<void>;
}

export function createErasureService(options: ErasureServiceOptions): ErasureService {
  const { config, stores, events, clock } = options;
  const records = stores.durable.records;
  const subjects = subjectHasher(options.vault);
  const holds = new LegalHolds({ records, events, clock });
  const requests = new ConsumerRequests({ records, clock });
  const erasures = new Erasures({
    durable: stores.durable,
    identity: options.identity,
    oauth: options.oauth,
    events,
    clock,
    subjects,
    issuer: config.issuer,
    signalsTopic: SIGNALS_TOPIC,
    forgetPseudonym: options.forgetPseudonym,
    ...(options.dropPseudonymIndex !== undefined && { dropPseudonymIndex: options.dropPseudonymIndex }),
    onHold: (userId) => holds.isHeld(userId),
    graceMs: config.privacy.erasureGraceDays * 24 * HOUR_MS,
    recipientDeadlineMs: config.privacy.recipientDeadlineHours * HOUR_MS,
    tombstoneFile: config.privacy.tombstoneFile,
    ...(options.kickOutbox !== undefined && { kickOutbox: options.kickOutbox }),
    // A request that read the account before its erasure runs at most http.requestTimeoutMs (and is answered
    // within it); twice that, and never under ten minutes, is past any of them.
    settleMs: Math.max(10 * 60_000, 2 * config.http.requestTimeoutMs),
    ...(options.onCleanupFailed !== undefined && { onCleanupFailed: options.onCleanupFailed }),
  });
  const mailer = config.mail.smtpUrl === undefined ? undefined : smtpSender({ smtpUrl: config.mail.smtpUrl, from: config.mail.from ?? `no-reply@${new URL(config.issuer).hostname}` });
  const retention = new Retention({
    durable: stores.durable,
    identity: options.identity,
    oauth: options.oauth,
    events,
    clock,
    erasures,
    holds,
    rules: config.privacy.retention,
    mail: mailer !== undefined,
    ipKey: options.vault.derive('stored-ip-pseudonyms'),
    issuer: config.issuer,
    ...(options.kickOutbox !== undefined && { kickOutbox: options.kickOutbox }),
  });
  const deliverers = {
    [NOTICE_EMAIL_TOPIC]: noticeEmailDeliverer({ sender: mailer, domain: new URL(config.issuer).hostname, sent: (message) => retention.noticeSent(message) }),
    [ERASURE_NOTICE_TOPIC]: erasureNoticeDeliverer({
      records,
      oauth: options.oauth,
      keyring: options.keyring,
      signingAlgorithm: config.tokens.signingAlgorithm,
      issuer: config.issuer,
      events,
      clock,
      allowPrivateNetworks: config.privacy.notifyPrivateNetworks,
    }),
  };
  // A change to the profile or the email is a correction (GDPR Art. 16; CCPA 1798.106), answered as it is made.
  // Only this instance's own events carry a detail (other instances hear ids only), so each is recorded once.
  const unsubscribe = options.subscriptions?.on('user.updated', async (event) => {
    const change = event.detail?.['change'];
    if (change !== 'profile' && change !== 'email') return;
    const channel = event.actorService === undefined ? 'account' : event.actorService.endsWith('cli') ? 'cli' : 'admin';
    await requests.open('correction', subjects.ofUser(event.actorUserId), channel, { answered: true });
  });
  const intervalMs = parseDuration(config.privacy.retention.interval);
  const holder = randomUUID();
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;

  // The lease lasts a little less than the interval, so the next run (here or elsewhere) can take it.
  const leaseMs = Math.max(1000, intervalMs - 1000);
  /** Renews this run's lease; false when it lapsed and another instance holds it now. */
  const keepLease = async (): Promise<boolean> => {
    const current = await stores.hot.getVersioned(JOB_LEASE_KEY);
    if (current === null) return stores.hot.setIfAbsent(JOB_LEASE_KEY, holder, leaseMs);
    return current.value === holder && (await stores.hot.compareAndSet(JOB_LEASE_KEY, current.version, holder, leaseMs)) !== null;
  };

  const runJob = async (): Promise<JobReport | null> => {
    if (!(await stores.hot.setIfAbsent(JOB_LEASE_KEY, holder, leaseMs))) return null;
    const erasuresCarriedOut = await erasures.executeDue(keepLease);
    const cleanups = await erasures.runCleanups(keepLease);
    const noticesOverdue = await erasures.flagOverdue();
    const overdueRequests = await requests.flagOverdue();
    for (const { request, deadline } of overdueRequests) {
      await events.emit({ type: 'privacy.request.overdue', outcome: 'failure', actorService: 'system', detail: { request: request.id, kind: request.kind, deadline } });
    }
    const retained = await retention.run(keepLease);
    const report: JobReport = { erasuresCarriedOut, cleanups, noticesOverdue, requestsOverdue: overdueRequests.length, retention: retained };
    await events.emit({
      type: 'privacy.retention.ran',
      // A clean-up or last pass that failed (logged, tried again next run) makes the run's outcome a failure; the
      // detail stays within the ledger's 16 keys.
      outcome: cleanups.failed > 0 ? 'failure' : 'success',
      actorService: 'system',
      detail: { erasuresCarriedOut, cleanupsResumed: cleanups.resumed, erasuresSettled: cleanups.settled, lateRecords: cleanups.lateRecords, noticesOverdue, requestsOverdue: overdueRequests.length, ...retained },
    });
    return report;
  };

  return {
    erasures,
    holds,
    requests,
    subjects,
    retention,
    deliverers,
    runJob: () => {
      const run = runJob();
      running = run.catch(() => undefined);
      return run;
    },
    start(onError) {
      if (timer !== undefined) return;
      timer = setInterval(() => {
        if (running !== undefined) return;
        running = runJob()
          .catch(onError)
          .finally(() => {
            running = undefined;
          });
      }, intervalMs);
      timer.unref();
    },
    async close() {
      unsubscribe?.();
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      await running;
      mailer?.close();
    },
  };
}
