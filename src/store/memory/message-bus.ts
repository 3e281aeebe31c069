/**
 * The in-process MessageBus: the embedded default's transport. It reaches
 * the listeners of this process only, so it never claims `deployment` reach:
 * a CLI command writing to the same SQLite file is another process, and the
 * server's caches keep polling for its changes.
 */
import type { MessageBus, MessageListener } from '../ports.ts';

export class InProcessMessageBus implements MessageBus {
  readonly driver = 'memory' as const;
  readonly reach = 'process' as const;
  readonly #listeners = new Set<MessageListener>();
  #closed = false;

  get connected(): boolean {
    return !this.#closed;
  }

  async publish(text: string): Promise<void> {
    if (this.#closed) return;
    // A copy: a listener may unsubscribe while it is being told.
    for (const listener of [...this.#listeners]) listener.message(text);
  }

  subscribe(listener: MessageListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
  }
}

export function openInProcessMessageBus(): MessageBus {
  return new InProcessMessageBus();
}
