/** A store port as its circuit breaker presents it during an outage. */
import { StoreUnavailableError } from '../../src/store/index.ts';

/** `port` whose every method fails at once with StoreUnavailableError while `down()` says so. */
export function failingWhile<T extends object>(port: T, down: () => boolean): T {
  return new Proxy(port, {
    get: (target, name, receiver) => {
      const value = Reflect.get(target, name, receiver) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => (down() ? Promise.reject(new StoreUnavailableError('test', 'store unavailable (test outage)')) : (value as (...a: unknown[]) => unknown).apply(target, args));
    },
  });
}
