/**
 * Hook chains: named extension points (points.ts), each an ordered chain of
 * handlers whose order comes from the versioned chain file
 * (src/hooks/chains.cfg), never from load order. Modules register their
 * built-in handlers; the server loads every chain once at start.
 */
export {
  CLAIM_NAME,
  HOOK_POINTS,
  REGISTERED_CLAIMS,
  RESERVED_CLAIMS,
  defineHook,
  isClaimName,
  isHookPoint,
  type AccessTokenClaimsContext,
  type AnyHookHandler,
  type Claims,
  type ClaimsPoint,
  type ConsentBeforeContext,
  type DecisionPoint,
  type HookAnswer,
  type HookCall,
  type HookContexts,
  type HookHandler,
  type HookInteraction,
  type HookPoint,
  type HookVerdict,
  type LoginAfterContext,
  type LoginBeforeContext,
  type RegistrationBeforeContext,
  type TokenClaimsContext,
  type UserinfoClaimsContext,
} from './points.ts';
export { CHAIN_FILE_VERSION, DEFAULT_DEADLINE_MS, HookChainError, parseChainFile, type ChainFile, type ChainLine, type ClaimsNamespace } from './chain-file.ts';
export { HookChains, HookUnavailableError, type ClaimsOutcome, type Decision, type HookFault, type LoadOptions } from './chains.ts';
export { MAX_REASON_LENGTH, type HookFaultKind } from './run.ts';
export { bundledChainSource } from './source.ts';
export { PLUGIN_HOST_HANDLER, PluginSlot, idlePluginSlot, type PluginDispatcher } from './plugin-slot.ts';
