#!/usr/bin/env node
// A vendor account's login shell: `omwatch-agent shell` with what login or sshd passes (`-c CMD` for
// `ssh host CMD`). List it in /etc/shells and `chsh -s` the account to it.
import { register } from 'tsx/esm/api';

register();
process.argv.splice(2, 0, 'shell');
await import('../agent/cli.ts');
