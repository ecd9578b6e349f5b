// The writer thread's entry: a thread starts without the main thread's TypeScript loader, so it
// registers tsx itself before loading the TypeScript body.
import { register } from 'tsx/esm/api';

register();
await import('./writer-thread.ts');
