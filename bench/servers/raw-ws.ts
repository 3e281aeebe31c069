/**
 * The raw limit of bench/signals-fanout.ts: a bare `ws` WebSocketServer on
 * node:http (perMessageDeflate off, as /signals/ws) that accepts every
 * upgrade and, on `{type:"publish",count,size,intervalMs}` over IPC, broadcasts `count`
 * frames `{"type":"set","cursor":"<n>","set":"xxx..."}` of exactly `size`
 * bytes to every connected socket: back to back (a burst), or one event
 * every `intervalMs` (paced). Answers
 * `{type:"published",appends:[[n,ns],...]}`: the process.hrtime at which each
 * event's broadcast began. Prints its ws:// URL once listening; exits on
 * SIGTERM or when the IPC channel closes.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { WebSocketServer } from 'ws';

const http = createServer((_request, response) => response.writeHead(404).end());
const wss = new WebSocketServer({ server: http, perMessageDeflate: false });
let cursor = 0;

process.on('message', (message: { type: string; count: number; size: number; intervalMs?: number }) => {
  if (message.type !== 'publish') return;
  void (async () => {
    const appends: [number, number][] = [];
    const start = performance.now();
    for (let i = 0; i < message.count; i++) {
      if (message.intervalMs !== undefined && message.intervalMs > 0) await sleep(start + i * message.intervalMs - performance.now());
      cursor++;
      const empty = JSON.stringify({ type: 'set', cursor: String(cursor), set: '' });
      const frame = JSON.stringify({ type: 'set', cursor: String(cursor), set: 'x'.repeat(Math.max(0, message.size - empty.length)) });
      appends.push([cursor, Number(process.hrtime.bigint())]);
      for (const client of wss.clients) client.send(frame);
    }
    process.send!({ type: 'published', appends });
  })();
});
process.once('disconnect', () => process.exit(0));
process.once('SIGTERM', () => process.exit(0));

http.listen(0, '127.0.0.1', () => {
  process.stdout.write(`ws://127.0.0.1:${(http.address() as AddressInfo).port}\n`);
});
