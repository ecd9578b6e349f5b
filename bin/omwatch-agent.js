#!/usr/bin/env node
// Runs the agent's TypeScript entry point through tsx, so the command works from a checkout.
import { register } from 'tsx/esm/api';

register();
await import('../agent/cli.ts');
