// The agent's configuration: one YAML file, validated once at start into a frozen typed object.
// Errors name the file, the key and what was expected, so plant IT can fix them without the source.
import { z } from 'zod';
import { MAX_FIELD_STRING_CHARS } from '../../collector/protocol/index.ts';
import { ToolSchema } from '../sensors/sessions/catalog.ts';
import { parseSettings, readSettingsFile } from './yaml-file.ts';
import { ConfigError } from '../errors.ts';

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
  delivery: z.strictObject({
    /** The outbox's byte cap; past it acked rows go, then the oldest plain events, alerts last. */
    outboxMaxBytes: z.number().int().min(64 * 1024).default(512 * 1024 * 1024),
    /** Delivered rows stay this long for local audit. */
    retainAckedMs: z.number().int().min(0).default(24 * 3_600_000),
    batchRecords: z.number().int().min(1).max(1_000).default(500),
    maxInFlightBatches: z.number().int().min(1).max(64).default(8),
  }).prefault({}),
  remoteAccess: z.strictObject({
    /** Added to the shipped catalogue; an entry with a shipped tool's name replaces it. */
    tools: z.array(ToolSchema).default([]),
  }).prefault({}),
});

export type AgentConfig = Readonly<z.infer<typeof ConfigSchema>>;

export { ConfigError };

/** The defaults, as if an empty file were read. */
export function defaultConfig(): AgentConfig {
  return deepFreeze(ConfigSchema.parse({}));
}

/** Reads and validates a config file; throws ConfigError naming every problem found. */
export function loadConfig(path: string): AgentConfig {
  return parseConfig(readSettingsFile(path, 'config file', configError), path);
}

export function parseConfig(text: string, source: string): AgentConfig {
  return deepFreeze(parseSettings(text, source, ConfigSchema, configError));
}

const configError = (message: string) => new ConfigError(message);

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
