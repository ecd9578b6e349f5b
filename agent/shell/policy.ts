// What the shell client asks for when it connects (its `hello`), checked by the daemon; and the
// policy that governs recorded shells (the `shell` section of the O&M policy).
import { z } from 'zod';
import { ShellPolicySchema, type ShellPolicy } from '../enrich/policy.ts';

export { ShellPolicySchema, type ShellPolicy };

/** The policy's defaults, for a daemon run without a policy file. */
export const DEFAULT_SHELL_POLICY: ShellPolicy = ShellPolicySchema.parse({});

const printable = (max: number) => z.string().max(max).regex(/^[^\p{Cc}]*$/u, 'no control characters');

/** The client's claims. Who the user is never comes from here: the daemon takes it from the kernel. */
export const HelloSchema = z.strictObject({
  cols: z.number().int().min(1).max(10_000),
  rows: z.number().int().min(1).max(10_000),
  term: z.string().regex(/^[A-Za-z0-9._+-]{1,64}$/).default('xterm'),
  lang: z.string().regex(/^[A-Za-z0-9._@-]{1,64}$/).optional(),
  ticket: printable(256).min(1).optional(),
  reason: printable(1_024).min(1).optional(),
  /** Run this instead of the interactive shell. */
  command: z.array(z.string().max(32_768)).min(1).max(256).optional(),
  /** The terminal the client runs in (its stdin and stdout), if any: the daemon may write to it itself (relay.ts). */
  terminal: z.string().max(64).optional(),
  /** SSH_CONNECTION as sshd set it for the client, when the client runs under sshd. */
  sshConnection: z.string().max(256).optional(),
});
export type Hello = z.infer<typeof HelloSchema>;
