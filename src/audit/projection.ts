/**
 * The audit projection: the ledger's subscription to the domain events.
 * Each event becomes its audit entry (none for an event that is only a
 * signal between instances), with exactly the fields it carried when
 * features wrote to the ledger themselves, so entries keep their bytes.
 */
import { EventHub, type DomainEvent, type EventHubOptions, type EventRecorder } from '../events/index.ts';
import type { AuditEvent } from './events.ts';
import type { Ledger } from './ledger.ts';
import type { SubjectPseudonyms } from './pseudonyms.ts';

/** The audit events of one domain event. */
export async function auditEventsOf(event: DomainEvent, pseudonyms: Pick<SubjectPseudonyms, 'pseudonym'>): Promise<AuditEvent[]> {
  switch (event.type) {
    case 'tokens.revoked':
      // The revoking action has its own entry (token.revoked, auth.logout, ...).
      return [];
    case 'signals.appended':
      // A wake-up between instances; each signal's cause has its own entry.
      return [];
    case 'user.created': {
      // The new user is named by their audit pseudonym, the id never enters
      // the log; a user already forgotten has none, and is named by nothing.
      const subject = await pseudonyms.pseudonym(event.userId);
      return [{ ...context(event), type: event.type, outcome: event.outcome, ...(subject !== null && { detail: { subject } }) }];
    }
    default:
      return [{ ...context(event), type: event.type, outcome: event.outcome, ...(event.detail !== undefined && { detail: event.detail }) }];
  }
}

function context(event: DomainEvent): Omit<AuditEvent, 'type' | 'outcome'> {
  return {
    ...(event.actorUserId !== undefined && { actorUserId: event.actorUserId }),
    ...(event.actorService !== undefined && { actorService: event.actorService }),
    ...(event.clientId !== undefined && { clientId: event.clientId }),
    ...(event.requestId !== undefined && { requestId: event.requestId }),
    ...(event.traceId !== undefined && { traceId: event.traceId }),
    ...(event.ip !== undefined && { ip: event.ip }),
    ...(event.time !== undefined && { time: event.time }),
  };
}

/** The recorder that writes the events' entries to the ledger: one batch per emit, durable before it resolves. */
export function ledgerRecorder(ledger: Pick<Ledger, 'recordAll' | 'pseudonyms'>): EventRecorder {
  return async (events) => {
    const entries: AuditEvent[] = [];
    for (const event of events) entries.push(...(await auditEventsOf(event, ledger.pseudonyms)));
    if (entries.length > 0) await ledger.recordAll(entries);
  };
}

/** An event hub whose events the ledger records (and, with a bus, other instances hear of). */
export function auditedEvents(ledger: Pick<Ledger, 'recordAll' | 'pseudonyms'>, options: EventHubOptions = {}): EventHub {
  const hub = new EventHub(options);
  hub.record(ledgerRecorder(ledger));
  return hub;
}
