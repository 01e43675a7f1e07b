import { describe, expect, it } from 'vitest';
import type { BreakerRegistry } from './breakers.ts';
import { MAX_BREAKER_SERIES, WorkerMetrics } from './metrics.ts';

function fakeBreakers(states: Map<string, 'closed' | 'open' | 'half-open'>): BreakerRegistry {
  return { states: () => states } as unknown as BreakerRegistry;
}

describe('WorkerMetrics breaker gauges', () => {
  it('when thousands of origins have breakers, then at most MAX_BREAKER_SERIES open ones are listed and all are counted', async () => {
    const states = new Map<string, 'closed' | 'open' | 'half-open'>();
    for (let i = 0; i < 5_000; i++) states.set(`https://h${i}.example:443`, i % 2 === 0 ? 'open' : 'closed');
    states.set('https://trial.example:443', 'half-open');
    const metrics = new WorkerMetrics(fakeBreakers(states));
    const text = await metrics.registry.metrics();
    const listed = text.split('\n').filter((l) => l.startsWith('mtls_relay_breaker_state{'));
    expect(listed).toHaveLength(MAX_BREAKER_SERIES);
    expect(text).toMatch(/^mtls_relay_breakers\{state="open",service="worker"\} 2500$/m);
    expect(text).toMatch(/^mtls_relay_breakers\{state="closed",service="worker"\} 2500$/m);
    expect(text).toMatch(/^mtls_relay_breakers\{state="half-open",service="worker"\} 1$/m);
  });
});
