import { it } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { FastHistogram } from '../../src/observability/histogram.ts';

it('renders cumulative buckets, sum and count per label set in Prometheus text', async () => {
  const registry = new Registry();
  const histogram = new FastHistogram({ name: 'demo_seconds', help: 'Demo.', labelNames: ['route'], buckets: [0.1, 1, 0.5], registry });
  const healthz = histogram.series({ route: '/healthz' });
  for (const value of [0.05, 0.1, 0.3, 0.7, 2]) healthz.observe(value);
  histogram.observe({ route: '/readyz' }, 0.2);
  healthz.observe(Number.NaN); // ignored, as prom-client would refuse it

  const text = await registry.metrics();
  const lines = text.split('\n');
  assert.ok(lines.includes('# TYPE demo_seconds histogram'));
  for (const expected of [
    'demo_seconds_bucket{route="/healthz",le="0.1"} 2',
    'demo_seconds_bucket{route="/healthz",le="0.5"} 3',
    'demo_seconds_bucket{route="/healthz",le="1"} 4',
    'demo_seconds_bucket{route="/healthz",le="+Inf"} 5',
    'demo_seconds_sum{route="/healthz"} 3.15',
    'demo_seconds_count{route="/healthz"} 5',
    'demo_seconds_bucket{route="/readyz",le="0.1"} 0',
    'demo_seconds_bucket{route="/readyz",le="0.5"} 1',
    'demo_seconds_count{route="/readyz"} 1',
  ]) {
    assert.ok(lines.includes(expected), `missing: ${expected}\n${text}`);
  }
});

it('hands back the same series for the same labels', () => {
  const histogram = new FastHistogram({ name: 'x_seconds', help: 'X.', labelNames: ['a', 'b'], buckets: [1], registry: new Registry() });
  assert.equal(histogram.series({ a: '1', b: 2 }), histogram.series({ b: 2, a: '1' }));
  assert.notEqual(histogram.series({ a: '1', b: 2 }), histogram.series({ a: '12', b: '' }));
});
