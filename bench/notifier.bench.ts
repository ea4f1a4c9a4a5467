/**
 * `notifier_calls_per_s`: memory-chain calls per second with 8 synchronous callbacks registered, the
 * all-synchronous path every simulated online/offline takes (no trace, no validator, as in a bare chain).
 */
import { timeIt, type Figure } from './figure.js';
import { memoryNotifierChain, NOTIFY_OK } from '../lib/kernel/notifier.js';
import { memoryAction, memoryNotify, getProfile } from '../lib/kernel/profile.js';

/** The notifier figures. */
export async function figures(): Promise<Record<string, Figure>> {
  const profile = getProfile('latest');
  const chain = memoryNotifierChain(profile);
  let seen = 0;
  for (let i = 0; i < 8; i++) chain.register(() => (seen++, NOTIFY_OK), i % 3);
  const action = memoryAction(profile, 'MEM_GOING_ONLINE');
  const arg = memoryNotify(profile, { start_pfn: 0x100000, nr_pages: 0x8000 });
  const calls = 100_000;
  const seconds = timeIt(() => {
    for (let i = 0; i < calls; i++) chain.callChain(action, arg);
  }, 500);
  if (seen < calls * 8) throw new Error('notifier bench: callbacks did not run');
  return { notifier_calls_per_s: { value: Math.round(calls / seconds), unit: 'calls/s', goal: '>= 1e6' } };
}
