// One event as the matchers see it: field values as text, lowered at most once per field per event,
// because every rule routed to the event asks for the same few fields.
import { nextGeneration } from './literals.ts';

export interface RuleEvent {
  id: string;
  time: string;
  category: string;
  product: string;
  fields: Readonly<Record<string, unknown>>;
}

/** The pseudo-field keyword searches scan: every field's value, one after another. */
export const KEYWORD_FIELD = '\u0000keywords';

export class EventView {
  readonly event: RuleEvent;
  /** Made on first use: most events are judged from the literal index alone. */
  #lower: Map<string, string | undefined> | undefined;
  /** Unique to this event's evaluation: literal tests stamped with it held for this event. */
  readonly generation = nextGeneration();
  #allLower: string[] | undefined;
  #allText: string[] | undefined;

  constructor(event: RuleEvent) {
    this.event = event;
  }

  /** Whether the field is present and not null (Sigma's `exists` and `null`). */
  has(field: string): boolean {
    const value = this.event.fields[field];
    return value !== undefined && value !== null;
  }

  /** The value as text, as Sigma compares it: numbers and booleans as written; undefined if absent. */
  text(field: string): string | undefined {
    return asText(this.event.fields[field]);
  }

  lower(field: string): string | undefined {
    this.#lower ??= new Map();
    let value = this.#lower.get(field);
    if (value === undefined && !this.#lower.has(field)) {
      value = this.text(field)?.toLowerCase();
      this.#lower.set(field, value);
    }
    return value;
  }

  /** Every field's value, lowered, for keyword search. */
  allLower(): string[] {
    this.#allLower ??= Object.keys(this.event.fields).map((field) => this.lower(field)).filter((v): v is string => v !== undefined);
    return this.#allLower;
  }

  /** Every field's value as text (keyword search). */
  allText(): string[] {
    if (this.#allText) return this.#allText;
    const texts: string[] = [];
    const { fields } = this.event;
    for (const field in fields) {
      const text = asText(fields[field]);
      if (text !== undefined) texts.push(text);
    }
    this.#allText = texts;
    return texts;
  }
}

/** A value as Sigma compares it: numbers and booleans as written; undefined for anything else. */
export function asText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  return undefined;
}
