// An alert (design.md §3): a rule's verdict on one or more events. It travels with the events, with
// priority over them; `rule.author` is kept because the Detection Rule License requires it.
import { z } from 'zod';
import { HostSchema } from './envelope.ts';
import { MAX_FIELD_STRING_CHARS, MAX_NAME_CHARS } from './limits.ts';

export const AlertSchema = z.strictObject({
  id: z.uuid(),
  time: z.iso.datetime(),
  rule: z.strictObject({
    id: z.string().min(1).max(MAX_NAME_CHARS),
    title: z.string().min(1).max(MAX_NAME_CHARS),
    level: z.enum(['informational', 'low', 'medium', 'high', 'critical']),
    tags: z.array(z.string().max(MAX_NAME_CHARS)).max(64),
    author: z.string().max(MAX_NAME_CHARS),
  }),
  eventIds: z.array(z.string().min(1).max(128)).min(1).max(100),
  host: HostSchema.optional(),
  sessionId: z.string().max(MAX_NAME_CHARS).optional(),
  summary: z.string().max(MAX_FIELD_STRING_CHARS),
});

export type AlertRecord = z.infer<typeof AlertSchema>;
