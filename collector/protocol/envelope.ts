// The event envelope of design.md §3: every observation the agent makes travels in one of these.
// `seq`, `stream`, `hash` and `prev` are assigned by the outbox; before it they are absent.
import { z } from 'zod';
import { categoryFields, type Category, type FieldsOf } from './categories.ts';
import { MAX_NAME_CHARS } from './limits.ts';

export const HostSchema = z.strictObject({
  id: z.string().min(1).max(MAX_NAME_CHARS),
  name: z.string().min(1).max(MAX_NAME_CHARS),
});
export type Host = z.infer<typeof HostSchema>;

export const ProductSchema = z.enum(['linux', 'windows']);
export type Product = z.infer<typeof ProductSchema>;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/);

const common = {
  id: z.uuid({ version: 'v7' }),
  stream: z.string().min(1).max(128).optional(),
  seq: z.number().int().nonnegative().optional(),
  time: z.iso.datetime(),
  host: HostSchema,
  product: ProductSchema,
  hash: sha256Hex.optional(),
  prev: sha256Hex.optional(),
};

function envelopeOf<C extends Category>(category: C) {
  return z.strictObject({ ...common, category: z.literal(category), fields: categoryFields[category] });
}

/** Any event: the envelope, discriminated by `category`, with that category's fields. */
export const EventSchema = z.discriminatedUnion('category', [
  envelopeOf('process_creation'),
  envelopeOf('process_termination'),
  envelopeOf('process_privilege_change'),
  envelopeOf('network_connection'),
  envelopeOf('remote_session'),
  envelopeOf('shell_command'),
  envelopeOf('session_recording'),
  envelopeOf('removable_media'),
  envelopeOf('agent'),
]);

export type OmEvent = z.infer<typeof EventSchema>;
export type EventOf<C extends Category> = Extract<OmEvent, { category: C }>;
export type { Category, FieldsOf };
