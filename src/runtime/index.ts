/**
 * The runtime: builds Portcullis's services in dependency order, stops them
 * in reverse with a timeout each; listeners with a swappable TLS context.
 */
export { Runtime, plan, type RuntimeOptions } from './runtime.ts';
export { RuntimeStopError, ServiceDefinitionError, ServiceStopError, type Service, type ServiceContext, type ServiceTable } from './service.ts';
export {
  PROFILES,
  type ApplicationRole,
  type ApplicationServices,
  type HookSettings,
  type HttpApplications,
  type PortcullisServices,
  type Profile,
  type Pki,
  type Registries,
  type ServiceName,
  type ServiceSettings,
  type Telemetry,
} from './profiles.ts';
export { ensureSignalsResource, portcullisServices } from './services.ts';
/** The scope of the transmitter's own resource (`client create --scope ssf:stream` makes that resource first). */
export { SSF_STREAM_SCOPE } from '../signals/index.ts';
export { DEFAULT_STOP_TIMEOUT_MS, startServices, withServices, type PortcullisRuntime, type StartServicesOptions } from './portcullis.ts';
export { Listener, type ListenOptions, type ListenerTls } from './listener.ts';
export type { IssuedServerCertificate, ListenerAuthority } from './listener-authority.ts';
export { MtlsListener, serverNames, type MtlsListenerOptions } from './mtls.ts';
export { renewalTime, scheduleRenewal, type CertificateRenewal, type RenewalEvent, type RenewalOptions } from './certificate-renewal.ts';
export { MAX_TIMER_MS, logTlsWatchEvent, watchTlsFiles, type TlsFileWatch, type TlsFileWatchOptions, type TlsLoadOutcome, type TlsWatchEvent } from './tls-watch.ts';
export { OUTBOX_RETAIN_DELIVERED_MS, UnknownOutboxTopicError, outboxDispatcher, type OutboxDeliverers } from './outbox.ts';
export {
  CertificateNotYetValidError,
  checkCertificateCurrent,
  checkClientTrust,
  checkTlsMaterial,
  describeCertificate,
  mtlsFilesOf,
  readTlsFiles,
  readTlsMaterial,
  secureContextOptions,
  tlsFilesOf,
  tlsServerOptions,
  type CertificateInfo,
  type ClientTrust,
  type TlsFiles,
  type TlsMaterial,
  type TlsServerOptions,
} from './tls.ts';
export { openVault, provisionVault, type Vault, type VaultProvision } from './vault.ts';
export { DeploymentError, assertDataDirUsable, assertDeploymentExists, openExistingStores, withAbsolutePaths } from './deployment.ts';
