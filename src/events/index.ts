/**
 * Domain events: the closed list of what happened (catalog.ts) and the port
 * features emit through (hub.ts). The audit ledger subscribes and is
 * awaited; caches react, in this process and, through the stores'
 * MessageBus, in every other instance.
 */
export {
  CROSS_INSTANCE_EVENT_TYPES,
  DOMAIN_EVENT_TYPES,
  crossesInstances,
  isDomainEventType,
  type DomainEvent,
  type DomainEventPayloads,
  type DomainEventType,
  type EventContext,
  type EventDetail,
  type EventOutcome,
  type ResourceRef,
} from './catalog.ts';
export { EventHub, type DomainEvents, type EventHubOptions, type EventReactor, type EventRecorder, type EventStager, type EventSubscriptions, type StagedEmit } from './hub.ts';
export { freshFor } from './freshness.ts';
