/**
 * The privacy workflows of one instance, built once by the runtime's
 * `privacy` service from the services they read: what the pages, the admin
 * API and the CLI use.
 */
import type { Config } from '../config/index.ts';
import type { KeyVault } from '../crypto/index.ts';
import type { DomainEvents } from '../events/index.ts';
import type { Identity } from '../identity/index.ts';
import type { ClientRegistry } from '../oauth/index.ts';
import type { Clock, Stores } from '../store/index.ts';
import { ExportLimit } from './export-limit.ts';
import { PrivacyExporter, type SubjectAuditSource } from './export.ts';
import { ConsumerRequests } from './requests.ts';
import { subjectHasher, type SubjectHasher } from './subjects.ts';

export interface Privacy {
  readonly requests: ConsumerRequests;
  readonly subjects: SubjectHasher;
  /** Access and portability (GDPR Art. 15, 20). */
  readonly exporter: PrivacyExporter;
  /** The account page's daily allowance of exports (privacy.exportsPerDay). */
  readonly exportLimit: ExportLimit;
}

export function createPrivacy(options: {
  config: Readonly<Config>;
  stores: Stores;
  vault: Pick<KeyVault, 'derive'>;
  events: DomainEvents;
  /** The audit ledger (its `subjectHistory`). */
  ledger: SubjectAuditSource;
  identity: Identity;
  /** Registered clients (an uncached registry). */
  clients: Pick<ClientRegistry, 'get'>;
  clock: Clock;
}): Privacy {
  const { config, stores, clock } = options;
  const records = stores.durable.records;
  const requests = new ConsumerRequests({ records, clock });
  const subjects = subjectHasher(options.vault);
  const exporter = new PrivacyExporter({
    records,
    issuer: config.issuer,
    clock,
    events: options.events,
    requests,
    subjects,
    sessions: options.identity.accounts.sessions,
    secondFactor: options.identity.secondFactor,
    clients: options.clients,
    audit: options.ledger,
  });
  return { requests, subjects, exporter, exportLimit: new ExportLimit({ hot: stores.hot, perDay: config.privacy.exportsPerDay }) };
}
