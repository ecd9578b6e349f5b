// The agent's configuration: one YAML file, validated once at start into a frozen typed object.
// Errors name the file, the key and what was expected, so plant IT can fix them without the source.
import { readFileSync } from 'node:fs';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { MAX_FIELD_STRING_CHARS } from '../../collector/protocol/index.ts';
import { ToolSchema } from '../sensors/sessions/catalog.ts';

export const ConfigSchema = z.strictObject({
  host: z.strictObject({
    /** Shown to analysts; the OS host name by default. */
    name: z.string().min(1).max(255).optional(),
  }).prefault({}),
  log: z.strictObject({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  }).prefault({}),
  sensors: z.strictObject({
    processes: z.strictObject({
      enabled: z.boolean().default(true),
      /** Every process living at least this long is seen. */
      scanIntervalMs: z.number().int().min(10).max(60_000).default(100),
      // Past the protocol's limit the collector would refuse the event.
      maxCommandLineChars: z.number().int().min(256).max(MAX_FIELD_STRING_CHARS).default(MAX_FIELD_STRING_CHARS),
    }).prefault({}),
    connections: z.strictObject({
      enabled: z.boolean().default(true),
      pollIntervalMs: z.number().int().min(100).max(600_000).default(1_000),
    }).prefault({}),
    sessions: z.strictObject({
      enabled: z.boolean().default(true),
      utmpPath: z.string().min(1).default('/run/utmp'),
    }).prefault({}),
    media: z.strictObject({
      enabled: z.boolean().default(true),
      pollIntervalMs: z.number().int().min(100).max(600_000).default(1_000),
    }).prefault({}),
  }).prefault({}),
  remoteAccess: z.strictObject({
    /** Added to the shipped catalogue; an entry with a shipped tool's name replaces it. */
    tools: z.array(ToolSchema).default([]),
  }).prefault({}),
});

export type AgentConfig = Readonly<z.infer<typeof ConfigSchema>>;

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The defaults, as if an empty file were read. */
export function defaultConfig(): AgentConfig {
  return deepFreeze(ConfigSchema.parse({}));
}

/** Reads and validates a config file; throws ConfigError naming every problem found. */
export function loadConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  return parseConfig(text, path);
}

export function parseConfig(text: string, source: string): AgentConfig {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    const error = doc.errors[0]!;
    const line = error.linePos?.[0];
    throw new ConfigError(`${source}${line ? `:${line.line}:${line.col}` : ''}: not valid YAML: ${error.message.split('\n')[0]}`);
  }
  const value: unknown = doc.toJS() ?? {};
  const result = ConfigSchema.safeParse(value);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const key = issue.path.join('.') || '(top level)';
      return `${source}: ${key}: ${describeIssue(issue, value)}`;
    });
    throw new ConfigError(problems.join('\n'));
  }
  return deepFreeze(result.data);
}

function describeIssue(issue: z.core.$ZodIssue, root: unknown): string {
  if (issue.code === 'unrecognized_keys') return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
  const got = valueAt(root, issue.path);
  const expected = issue.message.replace(/^Invalid input: /, '').replace(/, received \w+$/, '');
  return `${expected}, got ${JSON.stringify(got) ?? 'nothing'}`;
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let current = root;
  for (const key of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<PropertyKey, unknown>)[key];
  }
  return current;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
