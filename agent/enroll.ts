// Enrollment: trade an enrollment token for an agent id and key at the collector, once, and keep them
// in the data folder (mode 0600) with the collector's URL and pinned CA, for `run` to use.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { z } from 'zod';
import { ENROLL_PATH, isLoopbackHost } from '../collector/protocol/index.ts';
import { EnrollError } from './errors.ts';

const EnrollmentSchema = z.strictObject({
  agentId: z.string().min(1),
  key: z.string().min(16),
  collectorUrl: z.url(),
  caPem: z.string().optional(),
  enrolledAt: z.iso.datetime(),
});
export type Enrollment = z.infer<typeof EnrollmentSchema>;

export const ENROLLMENT_FILE = 'enrollment.json';

export { EnrollError };

/** Checks a collector base URL: https, or http only to loopback. */
export function collectorBase(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new EnrollError(`collector URL ${JSON.stringify(url)} is not a URL (expected https://host:port)`);
  }
  if (parsed.protocol === 'http:' && !isLoopbackHost(parsed.hostname)) throw new EnrollError(`collector ${url}: plain http:// is only allowed to loopback; use https://`);
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new EnrollError(`collector ${url}: expected https:// (or http:// to loopback)`);
  return parsed;
}

export async function enroll(options: { collectorUrl: string; token: string; caPem?: string; name: string; hostId: string }): Promise<Enrollment> {
  const base = collectorBase(options.collectorUrl);
  const url = new URL(ENROLL_PATH.replace(/^\//, ''), base.href.endsWith('/') ? base.href : `${base.href}/`);
  const body = JSON.stringify({ name: options.name, hostId: options.hostId });
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const { status, text } = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = send(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${options.token}`, 'content-length': Buffer.byteLength(body) },
      timeout: 15_000,
      ...(options.caPem ? { ca: options.caPem } : {}),
    }, (res) => {
      let answer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (answer = (answer + chunk).slice(0, 64 * 1024)));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: answer }));
    });
    req.on('timeout', () => req.destroy(new Error('no answer in 15 s')));
    req.on('error', (error) => reject(new EnrollError(`cannot reach the collector at ${base.origin}: ${error.message}`)));
    req.end(body);
  });
  let answer: unknown;
  try {
    answer = JSON.parse(text);
  } catch {
    answer = undefined;
  }
  if (status !== 201) {
    const reason = (answer as { error?: unknown } | undefined)?.error;
    // What the server says is data: quoted, so control characters cannot reach the terminal.
    throw new EnrollError(`the collector refused enrollment (HTTP ${status}): ${JSON.stringify(typeof reason === 'string' ? reason.slice(0, 500) : text.slice(0, 200))}`);
  }
  const parsed = z.strictObject({ agentId: z.string().min(1), key: z.string().min(16) }).safeParse(answer);
  if (!parsed.success) throw new EnrollError('the collector answered enrollment without an agent id and key');
  return { ...parsed.data, collectorUrl: base.href.replace(/\/$/, ''), ...(options.caPem ? { caPem: options.caPem } : {}), enrolledAt: new Date().toISOString() };
}

/** Writes the enrollment readable by its owner only, replacing any earlier one atomically. */
export function saveEnrollment(dataDir: string, enrollment: Enrollment): string {
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const path = join(dataDir, ENROLLMENT_FILE);
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, `${JSON.stringify(enrollment, null, 2)}\n`, { mode: 0o600 });
  chmodSync(temporary, 0o600);
  renameSync(temporary, path);
  return path;
}

export function loadEnrollment(dataDir: string): Enrollment | undefined {
  const path = join(dataDir, ENROLLMENT_FILE);
  if (!existsSync(path)) return undefined;
  if ((statSync(path).mode & 0o077) !== 0) throw new EnrollError(`${path} is readable by others; it holds the agent key: chmod 600 it`);
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new EnrollError(`${path} is not valid JSON: ${(error as Error).message}`);
  }
  const parsed = EnrollmentSchema.safeParse(value);
  if (!parsed.success) throw new EnrollError(`${path}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data;
}
