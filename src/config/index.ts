export { ConfigSchema, configLeaves, type Config, type ConfigLeaf } from './schema.ts';
export { ConfigError, configFileOf, configWarnings, isLoopbackHost, loadConfig, maskConfig, type ConfigInput, type LoadConfigOptions } from './load.ts';
export { redactUrl } from './redact-url.ts';
export { parseDuration } from './duration.ts';
