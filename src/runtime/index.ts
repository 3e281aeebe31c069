/**
 * The runtime: builds Portcullis's services in dependency order, stops them
 * in reverse with a timeout each; listeners with a swappable TLS context.
 */
export { Runtime, plan, type RuntimeOptions } from './runtime.ts';
export { RuntimeStopError, ServiceDefinitionError, ServiceStopError, type Service, type ServiceContext, type ServiceTable } from './service.ts';
export {
  PROFILES,
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
export { portcullisServices } from './services.ts';
export { DEFAULT_STOP_TIMEOUT_MS, startServices, withServices, type PortcullisRuntime, type StartServicesOptions } from './portcullis.ts';
export { Listener, type ListenOptions } from './listener.ts';
export { UnknownOutboxTopicError, outboxDispatcher, type OutboxDeliverers } from './outbox.ts';
export { checkTlsMaterial, readTlsMaterial, tlsFilesOf, type TlsFiles, type TlsMaterial } from './tls.ts';
export { openVault, provisionVault, type Vault, type VaultProvision } from './vault.ts';
export { DeploymentError, assertDataDirUsable, assertDeploymentExists, openExistingStores, withAbsolutePaths } from './deployment.ts';
