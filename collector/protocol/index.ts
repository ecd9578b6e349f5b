// The contract agents speak to the collector: event envelope and category schemas (design.md §2–§4).
export * from './categories.ts';
export * from './alert.ts';
export * from './envelope.ts';
export * from './limits.ts';
export * from './chain.ts';
export * from './wire.ts';
