export { buildServer, type ServerDependencies } from './app.ts';
export { exitGracefullyOnSignals, reloadTlsOnHangup, startPortcullis, type RunningPortcullis, type StartOptions } from './lifecycle.ts';
export { HttpError, errorRegistry, errorCodes, problemType, type ErrorCode } from './errors.ts';
export type { PortcullisRouteConfig } from './error-handler.ts';
